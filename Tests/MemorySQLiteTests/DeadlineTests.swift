import Foundation
import MemoryDomain
import MemoryUtilities
import XCTest

@testable import MemorySQLite

/// Every sqlite wait ends at the call's deadline with DEADLINE_EXCEEDED, and nothing commits after it.
/// "Another process" is a second sqlite connection holding `BEGIN IMMEDIATE` (the daemon-level test,
/// `SQLiteDeadlineTests` in IntegrationTests, uses a real second process).
final class DeadlineTests: SQLiteTestCase {
    private func assertDeadlineExceeded<T>(
        _ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            _ = try body()
            XCTFail("expected DEADLINE_EXCEEDED", file: file, line: line)
        } catch let error as MemoryError {
            XCTAssertEqual(error.code, .deadlineExceeded, "\(error)", file: file, line: line)
            XCTAssertEqual(error.type, .unspecified, "\(error)", file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }

    func testWriteOnALockedDatabaseEndsAtItsDeadlineAndIsNotCommitted() throws {
        let blocker = try SQLiteDatabase(path: backend.path)
        defer { blocker.close() }
        try blocker.exec("BEGIN IMMEDIATE", name: "begin")
        let start = monotonicNanos()
        // The deadline is the behaviour under test: answered at it (the old code waited 5 s for the lock and
        // then failed as a ConnectionError), with generous slack for a loaded machine.
        assertDeadlineExceeded {
            try self.connection.addMemoryItem(self.item("late"), upsert: false, context: self.context(deadlineIn: 150))
        }
        XCTAssertLessThan(Double(monotonicNanos() - start) / 1e6, 150 + 2000)
        try blocker.exec("ROLLBACK", name: "rollback")
        assertThrows(.notFound) { try self.connection.getMemoryItem(id: "late", context: self.context) }
        // Free again: the same connection writes at once, and the retry of the add succeeds.
        try connection.addMemoryItem(item("late"), upsert: false, context: context(deadlineIn: 10_000))
        XCTAssertEqual(try connection.getMemoryItem(id: "late", context: context).textContent, "text of late")
    }

    func testAWriteWhoseDeadlinePassesMidTransactionIsRolledBack() throws {
        let backend = try SQLiteBackend(
            dataDirectory: directory, namespace: "slow", limits: limits, batchSize: 100_000,
            indexBudgetBytes: Int.max, logger: .init(label: "t"))
        let conn = try backend.makeConnection()
        defer {
            conn.close()
            backend.shutdown()
        }
        // One transaction of 10,000 rows cannot finish in 20 ms: interrupted (or stopped before COMMIT).
        let items = (0..<10_000).map { item("big\($0)", text: "row \($0)", embedding: rng8($0)) }
        assertDeadlineExceeded { try conn.addMemoryItems(items, upsert: false, context: self.context(deadlineIn: 20)) }
        XCTAssertEqual(
            try conn.conversationHistory(HistoryQuery(userID: "u1", limit: 10), context: context).items.count, 0)
        // Nothing of it reached the index either.
        XCTAssertEqual(
            try conn.semanticSearch(SearchQuery(userID: "u1", embedding: rng8(1)), context: context).count, 0)
    }

    func testALongStatementIsInterruptedAtTheDeadline() throws {
        let db = try SQLiteDatabase(path: backend.path)
        defer { db.close() }
        // Counting to 10^10 takes minutes; the progress handler stops it at the deadline.
        assertDeadlineExceeded {
            try db.withDeadline(.after(milliseconds: 100)) { () throws(MemoryError) -> Int64 in
                try db.withStatement(
                    "count_far",
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10000000000) SELECT count(*) FROM c"
                ) { s throws(MemoryError) -> Int64 in try s.step() ? s.int64(0) : 0 }
            }
        }
        // The connection is usable afterwards, outside any deadline.
        XCTAssertEqual(
            try db.withStatement("one", "SELECT 1") { s throws(MemoryError) -> Int64 in try s.step() ? s.int64(0) : 0 },
            1)
    }

    func testACallPastItsDeadlineDoesNotStart() throws {
        let past = CallContext(deadline: .now(), now: now)
        assertDeadlineExceeded { try self.connection.addMemoryItem(self.item("never"), upsert: false, context: past) }
        assertDeadlineExceeded { try self.connection.getMemoryItem(id: "never", context: past) }
        assertThrows(.notFound) { try self.connection.getMemoryItem(id: "never", context: self.context) }
    }

    func testWaitingForAnotherWriterOfThisProcessEndsAtTheDeadline() {
        let lock = DeadlineLock()
        let holding = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            lock.withLock {
                holding.signal()
                release.wait()
            }
        }
        holding.wait()
        XCTAssertNil(lock.withLock(until: .after(milliseconds: 50)) { 1 })
        release.signal()
        XCTAssertEqual(lock.withLock(until: .after(milliseconds: 10_000)) { 2 }, 2)
    }

    /// The store refuses an existing id; the service above it (MemoryService, the same on every backend)
    /// turns the same item sent again into a success that keeps the stored row.
    func testRetriedAddOfTheSameItemSucceedsAndKeepsTheStoredRow() throws {
        let service = MemoryService(
            store: connection, limits: limits, version: "test", startedAtUptimeNanos: 0,
            healthFigures: { .init(backend: "sqlite", firestore: false, details: [:]) })
        func add(_ item: MemoryItem) throws(MemoryError) {
            _ = try service.handle(
                .addMemoryItem(item: item, upsert: false, rejectDuplicateContent: false), context: context)
        }
        let original = item("r1", embedding: rng8(1), metadata: ["k": .string("v")], at: 1_700_000_000)
        try add(original)
        // The retry's timestamp is its own receive time: still the same item.
        var retry = original
        retry.timestamp = Timestamp(seconds: 1_700_000_009)
        assertThrows(.duplicate) { try self.connection.addMemoryItem(retry, upsert: false, context: self.context) }
        try add(retry)
        XCTAssertEqual(try connection.getMemoryItem(id: "r1", context: context), original)
        let batch = try service.handle(.addMemoryItems(items: [retry], upsert: false), context: context)
        XCTAssertEqual(batch, .addMemoryItems([ItemResult(id: "r1", unchanged: true)]))
        // Anything else different is another item: DuplicateError as before.
        var changes: [MemoryItem] = []
        for change in 0..<5 {
            var other = original
            switch change {
            case 0: other.textContent = "other"
            case 1: other.embedding = rng8(2)
            case 2: other.metadata["k"] = .string("w")
            case 3: other.sessionID = "s9"
            default: other.expiration = now.adding(seconds: 60)
            }
            changes.append(other)
        }
        for other in changes { assertThrows(.duplicate) { try add(other) } }
        XCTAssertEqual(try connection.getMemoryItem(id: "r1", context: context), original)
    }

    private func rng8(_ seed: Int) -> [Float] {
        var r = SeededRandom(seed: UInt64(seed) &+ 99)
        return r.vector(8)
    }
}
