import Foundation
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import XCTest

@testable import MemoryFirestore

/// `findNearest` on the emulator against a brute-force top-k over the same items.
final class FirestoreSearchTests: FirestoreTestCase {
    func testFindNearestEqualsBruteForceForEveryMeasureWithPrefilters() throws {
        let dim = 16
        let backend = try makeBackend(dimension: dim)
        let conn = try backend.makeConnection()
        defer { conn.close() }
        let now = Timestamp.now()
        var items: [MemoryItem] = []
        for i in 0..<60 {
            let user = i % 5 == 0 ? "u2" : "u1"
            let persona = i % 3 == 0 ? "critic" : "helper"
            let session = i % 2 == 0 ? "s1" : "s2"
            let expired = i % 7 == 3
            items.append(
                item(
                    "mem_v\(i)", user: user, session: session, persona: persona, embedding: randomVector(dim),
                    expiration: expired ? now.adding(seconds: -1) : nil))
        }
        items.append(item("mem_noembedding"))
        XCTAssertEqual(try conn.addMemoryItems(items, upsert: false, context: context()).compactMap { $0 }.count, 0)

        let query = randomVector(dim)
        // Make the nearest candidates expired ones, so over-fetching is exercised.
        items[3].embedding = query
        try conn.addMemoryItem(items[3], upsert: true, context: context())

        for measure in DistanceMeasure.allCases {
            for (persona, session) in [("", ""), ("helper", ""), ("critic", "s1"), ("", "s2")] {
                for topK in [1, 5, 20] {
                    let q = SearchQuery(
                        userID: "u1", embedding: query, persona: persona, sessionID: session, topK: topK,
                        measure: measure)
                    let got = try conn.semanticSearch(q, context: context(now: now))
                    let expected = bruteForce(items, q, now: now)
                    let label = "\(measure) persona=\(persona) session=\(session) k=\(topK)"
                    XCTAssertEqual(got.map(\.item.id), expected.map(\.item.id), label)
                    for (g, e) in zip(got, expected) { XCTAssertEqual(g.score, e.score, accuracy: 1e-5, label) }
                    for g in got { XCTAssertEqual(g.item, items.first { $0.id == g.item.id }, label) }
                }
            }
            // min_score: the threshold keeps exactly the results at or above it.
            let all = bruteForce(
                items, SearchQuery(userID: "u1", embedding: query, topK: 1000, measure: measure), now: now)
            let cut = all[all.count / 2].score
            let q = SearchQuery(userID: "u1", embedding: query, topK: 1000, minScore: cut - 1e-6, measure: measure)
            let got = try conn.semanticSearch(q, context: context(now: now))
            XCTAssertEqual(
                got.map(\.item.id), all.filter { $0.score >= cut - 1e-6 }.map(\.item.id), "\(measure) min_score")
        }
        let none = try conn.semanticSearch(
            SearchQuery(userID: "u1", embedding: query, minScore: 2, measure: .cosine), context: context(now: now))
        XCTAssertEqual(none.count, 0)
    }

    /// findNearest asks for exactly top_k; only when expired rows took slots is it asked again, for the
    /// slots they took.
    func testExactTopKAsksAgainOnlyForSlotsTakenByExpiredRows() throws {
        let dim = 8
        let backend = try makeBackend(dimension: dim)
        let conn = try XCTUnwrap(try backend.makeConnection() as? FirestoreConnection)
        defer { conn.close() }
        let now = Timestamp.now()
        let query = randomVector(dim)
        var items = (0..<20).map { item("mem_k\($0)", embedding: randomVector(dim)) }
        // The three nearest to the query have expired.
        for j in 0..<3 {
            items.append(
                item(
                    "mem_stale\(j)", embedding: query.map { $0 + Float(j) * 1e-3 }, expiration: now.adding(seconds: -1))
            )
        }
        XCTAssertEqual(try conn.addMemoryItems(items, upsert: false, context: context()).compactMap { $0 }.count, 0)

        let q = SearchQuery(userID: "u1", embedding: query, topK: 5, measure: .euclidean)
        let got = try conn.semanticSearch(q, context: context(now: now))
        XCTAssertEqual(got.map(\.item.id), bruteForce(items, q, now: now).map(\.item.id))
        XCTAssertEqual(conn.lastSearchLimits, [5, 8], "top_k, then top_k + the 3 slots the expired rows took")

        // Nothing expired among the nearest: one query of exactly top_k.
        let far = SearchQuery(userID: "u1", embedding: query.map { -$0 }, topK: 4, measure: .euclidean)
        XCTAssertEqual(
            try conn.semanticSearch(far, context: context(now: now)).map(\.item.id),
            bruteForce(items, far, now: now).map(\.item.id))
        XCTAssertEqual(conn.lastSearchLimits, [4])
    }

    private func bruteForce(_ items: [MemoryItem], _ q: SearchQuery, now: Timestamp) -> [ScoredItem] {
        var out: [ScoredItem] = []
        for item in items {
            guard item.userID == q.userID, !item.embedding.isEmpty, !item.isExpired(at: now) else { continue }
            if !q.persona.isEmpty && item.personaActive != q.persona { continue }
            if !q.sessionID.isEmpty && item.sessionID != q.sessionID { continue }
            let score: Double = Scoring.score(q.embedding, item.embedding, measure: q.measure)
            if let m = q.minScore, score < m { continue }
            out.append(ScoredItem(item: item, score: score))
        }
        out.sort { (a: ScoredItem, b: ScoredItem) -> Bool in
            a.score != b.score ? a.score > b.score : a.item.id < b.item.id
        }
        return Array(out.prefix(q.topK))
    }
}
