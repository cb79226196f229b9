import MemoryDomain
import XCTest

@testable import MemorySQLite

/// Fill and brute-force helpers, shared by the in-memory and the streamed search tests.
class SearchTestCase: SQLiteTestCase {
    var rng = SeededRandom(seed: 42)
    var stored: [MemoryItem] = []

    /// 300 items over 3 personas, 2 sessions, some expired, some without embedding, some of another user.
    func fill() throws {
        var items: [MemoryItem] = []
        for i in 0..<300 {
            items.append(
                item(
                    String(format: "v%03d", i), user: i % 10 == 9 ? "u2" : "u1", session: i % 2 == 0 ? "s1" : "s2",
                    persona: ["p1", "p2", "p3"][i % 3], embedding: i % 17 == 0 ? [] : rng.vector(8),
                    expiresIn: i % 13 == 0 ? -1 : (i % 11 == 0 ? 600 : nil)))
        }
        XCTAssertEqual(try connection.addMemoryItems(items, upsert: false, context: context).compactMap { $0 }.count, 0)
        stored = items
    }

    /// The exact answer, computed the slow way.
    func bruteForce(_ q: SearchQuery) -> [(String, Double)] {
        let candidates = stored.filter {
            $0.userID == q.userID && !$0.embedding.isEmpty && !$0.isExpired(at: now)
                && (q.persona.isEmpty || $0.personaActive == q.persona)
                && (q.sessionID.isEmpty || $0.sessionID == q.sessionID)
        }
        var scored = candidates.map { ($0.id, Scoring.score($0.embedding, q.embedding, measure: q.measure)) }
        scored.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        return Array(scored.prefix(q.topK).filter { q.minScore == nil || $0.1 >= q.minScore! })
    }

    func check(_ q: SearchQuery, file: StaticString = #filePath, line: UInt = #line) throws {
        let got = try connection.semanticSearch(q, context: context)
        let want = bruteForce(q)
        XCTAssertEqual(
            got.map(\.item.id), want.map(\.0), "\(q.measure) persona=\(q.persona) session=\(q.sessionID)", file: file,
            line: line)
        for (g, w) in zip(got, want) { XCTAssertEqual(g.score, w.1, accuracy: 1e-9, file: file, line: line) }
        for g in got {
            XCTAssertEqual(g.item.userID, q.userID, file: file, line: line)
            XCTAssertEqual(g.item, stored.first { $0.id == g.item.id }, file: file, line: line)
        }
    }

    /// Every measure, prefilter and a range of k against the brute force.
    func checkAllMeasuresAndPrefilters() throws {
        try fill()
        for measure in DistanceMeasure.allCases {
            for (persona, session) in [("", ""), ("p2", ""), ("", "s1"), ("p3", "s2"), ("nobody", "")] {
                for topK in [1, 5, 40, 1000] {
                    try check(
                        SearchQuery(
                            userID: "u1", embedding: rng.vector(8), persona: persona, sessionID: session,
                            topK: topK, measure: measure))
                }
            }
            try check(SearchQuery(userID: "u2", embedding: rng.vector(8), topK: 10, measure: measure))
        }
    }
}

final class SearchTests: SearchTestCase {
    func testExactTopKForAllMeasuresAndPrefilters() throws {
        try checkAllMeasuresAndPrefilters()
        XCTAssertEqual(backend.index.statistics.users, 2)
        XCTAssertEqual(backend.index.statistics.streamedSearches, 0)
    }

    func testMinScore() throws {
        try fill()
        let q = rng.vector(8)
        let all = try connection.semanticSearch(SearchQuery(userID: "u1", embedding: q, topK: 1000), context: context)
        XCTAssertGreaterThan(all.count, 100)
        let cut = all[20].score
        let some = try connection.semanticSearch(
            SearchQuery(userID: "u1", embedding: q, topK: 1000, minScore: cut), context: context)
        XCTAssertEqual(some.map(\.item.id), Array(all.prefix(21)).map(\.item.id))
        try check(SearchQuery(userID: "u1", embedding: q, topK: 10, minScore: 0.5, measure: .cosine))
        try check(SearchQuery(userID: "u1", embedding: q, topK: 50, minScore: -2.0, measure: .euclidean))
    }

    func testIndexFollowsDeleteUpsertAndCleanup() throws {
        try fill()
        // Load the index first so the writes below must update it, not just the database.
        _ = try connection.semanticSearch(SearchQuery(userID: "u1", embedding: rng.vector(8)), context: context)
        let target = rng.vector(8)
        // Upsert an item to point exactly at the query: it must come first.
        var moved = stored[1]
        moved.embedding = target
        try connection.addMemoryItem(moved, upsert: true, context: context)
        stored[1] = moved
        XCTAssertEqual(
            try connection.semanticSearch(SearchQuery(userID: "u1", embedding: target, topK: 1), context: context)
                .first?.item.id, moved.id)
        try check(SearchQuery(userID: "u1", embedding: target, topK: 20))

        // Upsert it without embedding: it leaves the index.
        moved.embedding = []
        try connection.addMemoryItem(moved, upsert: true, context: context)
        stored[1] = moved
        try check(SearchQuery(userID: "u1", embedding: target, topK: 20))

        // Move an item to another user.
        var other = stored[2]
        other.userID = "u2"
        try connection.addMemoryItem(other, upsert: true, context: context)
        stored[2] = other
        try check(SearchQuery(userID: "u1", embedding: target, topK: 300))

        // Delete some.
        for i in [3, 4, 5, 6] {
            try connection.deleteMemoryItem(id: stored[i].id, context: context)
        }
        stored.removeSubrange(3...6)
        try check(SearchQuery(userID: "u1", embedding: target, topK: 300, measure: .dotProduct))

        // Cleanup at a later "now" removes the items that expire in 600 s, from the index too.
        let later = CallContext(now: now.adding(seconds: 601))
        let deleted = try connection.cleanupExpired(context: later)
        let expectedDeleted = stored.filter { $0.expiration != nil }.count
        XCTAssertEqual(deleted, UInt64(expectedDeleted))
        stored.removeAll { $0.expiration != nil }
        try check(SearchQuery(userID: "u1", embedding: target, topK: 300, measure: .euclidean))
        XCTAssertEqual(
            backend.index.loadedVectors(for: "u1")?.count,
            stored.filter { $0.userID == "u1" && !$0.embedding.isEmpty }.count)
    }

    func testFreshBackendLoadsIndexFromDisk() throws {
        try fill()
        connection.close()
        backend.shutdown()
        backend = try makeBackend()
        connection = try backend.makeConnection()
        for measure in DistanceMeasure.allCases {
            try check(SearchQuery(userID: "u1", embedding: rng.vector(8), topK: 15, measure: measure))
        }
    }

    func testZeroVectorsScoreZeroForCosine() throws {
        try connection.addMemoryItem(
            item("z", embedding: [Float](repeating: 0, count: 8)), upsert: false, context: context)
        let r = try connection.semanticSearch(SearchQuery(userID: "u1", embedding: rng.vector(8)), context: context)
        XCTAssertEqual(r.map(\.score), [0])
    }
}

/// The index alone, at sizes that take the four-row and multi-threaded paths.
final class EmbeddingIndexTests: XCTestCase {
    func testLargeScanMatchesBruteForce() {
        var rng = SeededRandom(seed: 7)
        let dimension = 300  // not a multiple of 16: exercises the padding
        let rows = 4_003  // not a multiple of 4
        // A low threshold splits even this scan over the cores.
        let index = UserVectors(dimension: dimension, floatsPerThread: 1 << 16)
        var vectors: [[Float]] = []
        for i in 0..<rows {
            let v = rng.vector(dimension)
            vectors.append(v)
            index.put(
                IndexedVector(
                    id: "r\(i)", userID: "u", persona: i % 3 == 0 ? "a" : "b", session: "",
                    expiration: i % 7 == 0 ? 5 : nil, embedding: v))
        }
        XCTAssertEqual(index.count, rows)
        for measure in DistanceMeasure.allCases {
            for persona in ["", "a"] {
                let q = rng.vector(dimension)
                let got = index.search(q, measure: measure, topK: 25, persona: persona, session: "", now: 10)
                var want = (0..<rows).filter { $0 % 7 != 0 && (persona.isEmpty || ($0 % 3 == 0) == (persona == "a")) }
                    .map { ("r\($0)", Scoring.score(vectors[$0], q, measure: measure)) }
                want.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
                XCTAssertEqual(got.map(\.id), want.prefix(25).map(\.0), "\(measure) persona=\(persona)")
                for (g, w) in zip(got, want) { XCTAssertEqual(g.score, w.1, accuracy: 1e-9) }
            }
        }
        // Removing rows (swap with the last) keeps the rest searchable.
        for i in stride(from: 0, to: rows, by: 2) { index.remove(id: "r\(i)") }
        XCTAssertEqual(index.count, rows / 2)
        let q = vectors[1]
        XCTAssertEqual(index.search(q, measure: .euclidean, topK: 1, persona: "", session: "", now: 0).first?.id, "r1")
    }
}
