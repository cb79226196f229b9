import Foundation
import MemoryDomain
import MemoryUtilities
import Synchronization
import XCTest

@testable import MemorySQLite

/// Loading a user holds no lock writers need, and the index stays exact for commits made during the load;
/// a stream of searches does not starve an update.
final class IndexConcurrencyTests: SQLiteTestCase {
    /// The writes another connection makes from inside the load (`loadProgress` runs on the loading thread,
    /// between two chunks of its read), each waited for with a bound: if the load held the writer lock, they
    /// could not finish until it ended, and the bound would pass.
    final class Writer: @unchecked Sendable {
        let connection: StoreConnection
        let context: CallContext
        let items: [MemoryItem]
        var finishedDuringLoad = 0
        var failures: [String] = []
        var rowsLoadedAtFirstWrite = -1

        init(connection: StoreConnection, context: CallContext, items: [MemoryItem]) {
            self.connection = connection
            self.context = context
            self.items = items
        }

        func writeDuringLoad(rowsLoaded: Int) {
            guard rowsLoadedAtFirstWrite < 0 else { return }
            rowsLoadedAtFirstWrite = rowsLoaded
            let done = DispatchSemaphore(value: 0)
            let box = self
            Thread.detachNewThread {
                do {
                    // A new vector, a replaced one not read yet, a deletion of one already read.
                    try box.connection.addMemoryItem(box.items[0], upsert: false, context: box.context)
                    try box.connection.addMemoryItem(box.items[1], upsert: true, context: box.context)
                    try box.connection.deleteMemoryItem(id: "v10", context: box.context)
                    // Another user's write is untouched by the load.
                    try box.connection.addMemoryItem(box.items[2], upsert: false, context: box.context)
                } catch {
                    box.failures.append("\(error)")
                }
                done.signal()
            }
            if done.wait(timeout: .now() + 20) == .success {
                finishedDuringLoad = 4
            } else {
                failures.append("writes did not finish while the user was loading")
            }
        }
    }

    func testWritersCommitWhileAUserLoadsAndTheIndexIncludesTheirChanges() throws {
        var rng = SeededRandom(seed: 11)
        var stored: [String: [Float]] = [:]
        var items: [MemoryItem] = []
        for i in 0..<5000 {
            let v = rng.vector(8)
            items.append(item("v\(i)", embedding: v))
            stored["v\(i)"] = v
        }
        XCTAssertEqual(try connection.addMemoryItems(items, upsert: false, context: context).compactMap { $0 }.count, 0)

        let newVector = rng.vector(8), replaced = rng.vector(8)
        let writer = Writer(
            connection: try backend.makeConnection(), context: context,
            items: [
                item("new", embedding: newVector), item("v4900", text: "replaced", embedding: replaced),
                item("other", user: "u2", embedding: rng.vector(8)),
            ])
        defer { writer.connection.close() }
        backend.index.loadProgress = { _, rows in writer.writeDuringLoad(rowsLoaded: rows) }

        let q = rng.vector(8)
        let results = try connection.semanticSearch(
            SearchQuery(userID: "u1", embedding: q, topK: 1000), context: context)
        XCTAssertEqual(writer.failures, [])
        XCTAssertEqual(writer.finishedDuringLoad, 4)
        XCTAssertEqual(writer.rowsLoadedAtFirstWrite, 1000)

        stored["new"] = newVector
        stored["v4900"] = replaced
        stored["v10"] = nil
        // The index after the load is the committed state: every vector, exactly once, with its current value.
        let all = try connection.semanticSearch(
            SearchQuery(userID: "u1", embedding: q, topK: 1000, measure: .euclidean), context: context)
        XCTAssertEqual(backend.index.loadedVectors(for: "u1")?.count, stored.count)
        var want = stored.map { ($0.key, Scoring.score($0.value, q, measure: .cosine)) }
        want.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        XCTAssertEqual(results.map(\.item.id).prefix(50), want.prefix(50).map(\.0).prefix(50))
        var wantEuclidean = stored.map { ($0.key, Scoring.score($0.value, q, measure: .euclidean)) }
        wantEuclidean.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        XCTAssertEqual(all.map(\.item.id), wantEuclidean.prefix(1000).map(\.0))
        XCTAssertFalse(all.contains { $0.item.id == "v10" })
        // The replaced vector is found by itself.
        let hit = try connection.semanticSearch(
            SearchQuery(userID: "u1", embedding: replaced, topK: 1, measure: .euclidean), context: context)
        XCTAssertEqual(hit.map(\.item.id), ["v4900"])
        XCTAssertEqual(hit.first?.item.textContent, "replaced")
    }

    func testAStreamOfSearchesDoesNotStarveAnUpdate() {
        var rng = SeededRandom(seed: 3)
        let dimension = 256
        let vectors = UserVectors(dimension: dimension, floatsPerThread: Int.max)
        for i in 0..<8000 {
            vectors.put(
                IndexedVector(
                    id: "r\(i)", userID: "u", persona: "", session: "", expiration: nil,
                    embedding: rng.vector(dimension)))
        }
        let query = rng.vector(dimension)
        let searchers = 3, cap = 1500
        let completed = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let allStarted = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        for _ in 0..<searchers {
            Thread.detachNewThread {
                var mine = 0
                while !stop.load(ordering: .relaxed) && mine < cap {
                    _ = vectors.search(query, measure: .cosine, topK: 5, persona: "", session: "", now: 0)
                    mine += 1
                    if mine == 1 { allStarted.signal() }
                    completed.add(1, ordering: .relaxed)
                }
                finished.signal()
            }
        }
        for _ in 0..<searchers { allStarted.wait() }
        // Searches overlap all the time now; a reader-preferring lock would let the put in only after they stop.
        let before = completed.load(ordering: .relaxed)
        vectors.put(
            IndexedVector(
                id: "update", userID: "u", persona: "", session: "", expiration: nil, embedding: query))
        let during = completed.load(ordering: .relaxed) - before
        stop.store(true, ordering: .relaxed)
        for _ in 0..<searchers { finished.wait() }
        // Writer preference: the put waits for the searches in progress (one each), not for the stream.
        XCTAssertLessThan(during, searchers * cap / 2, "the update waited for \(during) searches")
        XCTAssertEqual(
            vectors.search(query, measure: .cosine, topK: 1, persona: "", session: "", now: 0).first?.id, "update")
    }
}
