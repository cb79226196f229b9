import Foundation
import MemoryDomain
import MemoryUtilities
import XCTest

@testable import MemorySQLite

/// A budget of less than one block: every user is searched by streaming from sqlite, and must get exactly
/// what the in-memory index gives (the same checks as `SearchTests`).
final class StreamedSearchTests: SearchTestCase {
    override func setUpWithError() throws {
        indexBudgetBytes = 1000
        try super.setUpWithError()
    }

    func testStreamedSearchIsExactForAllMeasuresAndPrefilters() throws {
        try checkAllMeasuresAndPrefilters()
        let s = backend.index.statistics
        XCTAssertEqual(s.users, 0)
        XCTAssertEqual(s.bytes, 0)
        XCTAssertEqual(s.loads, 0)
        XCTAssertEqual(s.streamedSearches, 3 * (5 * 4 + 1))
        XCTAssertEqual(backend.statistics()["index_streamed_searches"], .number(63))
    }

    func testStreamedSearchOverManyChunksMatchesTheIndex() throws {
        // 3,000 vectors: three chunks of 1024 rows, the last one partial.
        var items: [MemoryItem] = []
        for i in 0..<3000 { items.append(item("c\(i)", user: "big", embedding: rng.vector(8))) }
        XCTAssertEqual(try connection.addMemoryItems(items, upsert: false, context: context).compactMap { $0 }.count, 0)
        stored = items
        for measure in DistanceMeasure.allCases {
            for topK in [1, 10, 1000] {
                try check(SearchQuery(userID: "big", embedding: rng.vector(8), topK: topK, measure: measure))
            }
        }
    }
}

final class IndexBudgetTests: SQLiteTestCase {
    var rng = SeededRandom(seed: 5)

    private func fillUser(_ user: String, rows: Int) throws {
        let items = (0..<rows).map { item("\(user)-\($0)", user: user, embedding: rng.vector(8)) }
        XCTAssertEqual(try connection.addMemoryItems(items, upsert: false, context: context).compactMap { $0 }.count, 0)
    }

    private func search(_ user: String) throws -> [ScoredItem] {
        try connection.semanticSearch(SearchQuery(userID: user, embedding: rng.vector(8), topK: 3), context: context)
    }

    func testLeastRecentlySearchedUsersAreEvictedBeyondTheBudget() throws {
        // Room for two users of 100 rows (one block each), not three.
        let perUser = UserVectors.estimatedBytes(rows: 100, dimension: 8)
        indexBudgetBytes = 2 * perUser + perUser / 2
        backend.shutdown()
        backend = try makeBackend()
        connection = try backend.makeConnection()
        for u in ["a", "b", "c"] { try fillUser(u, rows: 100) }

        XCTAssertEqual(try search("a").count, 3)
        XCTAssertEqual(try search("b").count, 3)
        var s = backend.index.statistics
        XCTAssertEqual([s.users, s.evictions, s.loads], [2, 0, 2])
        XCTAssertEqual(s.bytes, 2 * perUser)

        XCTAssertEqual(try search("c").count, 3)  // a is the least recently searched
        s = backend.index.statistics
        XCTAssertEqual([s.users, s.evictions, s.loads], [2, 1, 3])
        XCTAssertNil(backend.index.loadedVectors(for: "a"))
        XCTAssertLessThanOrEqual(s.bytes, indexBudgetBytes)

        XCTAssertEqual(try search("b").count, 3)  // b is now more recent than c
        XCTAssertEqual(try search("a").count, 3)  // reloaded; c goes
        s = backend.index.statistics
        XCTAssertEqual([s.users, s.evictions, s.loads], [2, 2, 4])
        XCTAssertNil(backend.index.loadedVectors(for: "c"))
        XCTAssertNotNil(backend.index.loadedVectors(for: "b"))

        let health = backend.statistics()
        XCTAssertEqual(health["index_evictions"], .number(2))
        XCTAssertEqual(health["indexed_users"], .number(2))
        XCTAssertEqual(health["index_bytes"], .number(Double(2 * perUser)))
        XCTAssertEqual(health["index_budget_bytes"], .number(Double(indexBudgetBytes)))
    }

    func testTheBudgetHoldsWhileALoadIsInProgress() throws {
        let perUser = UserVectors.estimatedBytes(rows: 1100, dimension: 8)
        indexBudgetBytes = perUser + perUser / 2
        backend.shutdown()
        backend = try makeBackend()
        connection = try backend.makeConnection()
        try fillUser("a", rows: 1100)
        try fillUser("b", rows: 1100)
        XCTAssertEqual(try search("a").count, 3)
        // While b loads (the hook runs between chunks of its read), a is already gone: room is made first.
        let seen = BytesSeen()
        let index = backend.index
        index.loadProgress = { _, _ in seen.record(index.statistics.bytes) }
        XCTAssertEqual(try search("b").count, 3)
        XCTAssertEqual(seen.values, [0])
        XCTAssertNil(backend.index.loadedVectors(for: "a"))
        XCTAssertEqual(backend.index.statistics.evictions, 1)
    }

    final class BytesSeen: @unchecked Sendable {
        private(set) var values: [Int] = []
        func record(_ v: Int) { values.append(v) }
    }

    func testAUserOverTheBudgetAloneIsStreamedNotLoaded() throws {
        indexBudgetBytes = UserVectors.estimatedBytes(rows: 1500, dimension: 8)
        backend.shutdown()
        backend = try makeBackend()
        connection = try backend.makeConnection()
        try fillUser("small", rows: 1000)
        try fillUser("huge", rows: 2100)
        XCTAssertEqual(try search("small").count, 3)
        XCTAssertEqual(try search("huge").count, 3)
        let s = backend.index.statistics
        XCTAssertEqual([s.users, s.loads, s.streamedSearches, s.evictions], [1, 1, 1, 0])
        XCTAssertNotNil(backend.index.loadedVectors(for: "small"))
    }

    func testLoadingReservesFromTheCountAndAddsBlocksWithoutCopying() throws {
        try fillUser("u", rows: 2500)
        XCTAssertEqual(try search("u").count, 3)
        let vectors = try XCTUnwrap(backend.index.loadedVectors(for: "u"))
        XCTAssertEqual(vectors.count, 2500)
        // Three blocks of 1024 rows, not a doubled matrix.
        XCTAssertEqual(vectors.bytes, UserVectors.estimatedBytes(rows: 2500, dimension: 8))
        XCTAssertEqual(
            vectors.bytes, 3 * UserVectors.blockBytes(dimension: 8) + 2500 * UserVectors.bytesPerRowBesidesMatrix)
        // Deleting rows down to one block frees the others.
        for i in 1024..<2500 { try connection.deleteMemoryItem(id: "u-\(i)", context: context) }
        XCTAssertEqual(vectors.count, 1024)
        XCTAssertEqual(
            vectors.bytes, UserVectors.blockBytes(dimension: 8) + 1024 * UserVectors.bytesPerRowBesidesMatrix)
    }
}
