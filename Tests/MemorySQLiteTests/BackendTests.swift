import Logging
import MemoryDomain
import MemoryUtilities
import XCTest

@testable import MemorySQLite

#if canImport(Glibc)
import Glibc
#endif

final class BackendTests: SQLiteTestCase {
    func testFileLayoutAndSchemaVersion() throws {
        XCTAssertEqual(backend.name, "sqlite")
        XCTAssertEqual(backend.path, directory + "/test.sqlite3")
        XCTAssertEqual(access(backend.path, F_OK), 0)
        var st = stat()
        XCTAssertEqual(stat(directory, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o750)
        let db = try SQLiteDatabase(path: backend.path, busyTimeoutMilliseconds: 100)
        defer { db.close() }
        XCTAssertEqual(
            try db.withStatement("v", "PRAGMA user_version") { s throws(MemoryError) in try s.step() ? s.int64(0) : -1
            }, Schema.version)
        XCTAssertEqual(
            try db.withStatement("j", "PRAGMA journal_mode") { s throws(MemoryError) in try s.step() ? s.string(0) : ""
            }, "wal")
    }

    func testBadNamespaceIsRejected() {
        for bad in ["", "../x", "a/b", "a:b"] {
            assertThrows(.validation) {
                try SQLiteBackend(
                    dataDirectory: self.directory, namespace: bad, limits: self.limits, logger: Logger(label: "t"))
            }
        }
    }

    func testNewerSchemaIsRefused() throws {
        let db = try SQLiteDatabase(path: backend.path, busyTimeoutMilliseconds: 100)
        try db.exec("PRAGMA user_version = 99", name: "bump")
        db.close()
        assertThrows(.storage) { try self.makeBackend() }
    }

    func testDataSurvivesReopen() throws {
        try connection.addMemoryItem(item("m1", embedding: [1, 0, 0, 0, 0, 0, 0, 0]), upsert: false, context: context)
        try connection.addAgentData(
            AgentData(id: "d1", agentID: "a", timestamp: now, dataType: "t", content: .number(7)), context: context)
        connection.close()
        backend.shutdown()
        backend = try makeBackend()
        connection = try backend.makeConnection()
        XCTAssertEqual(
            try connection.getMemoryItem(id: "m1", context: context), item("m1", embedding: [1, 0, 0, 0, 0, 0, 0, 0]))
        XCTAssertEqual(try connection.getAgentData(id: "d1", context: context).content, .number(7))
    }

    func testCleanupCountsItemsAndAgentDataInBatches() throws {
        let backend = try SQLiteBackend(
            dataDirectory: directory, namespace: "cleanup", limits: limits, batchSize: 7, logger: Logger(label: "t"))
        let conn = try backend.makeConnection()
        defer {
            conn.close()
            backend.shutdown()
        }
        let items = (0..<50).map { item("c\($0)", expiresIn: $0 < 30 ? -1 : ($0 < 40 ? 100 : nil)) }
        XCTAssertEqual(try conn.addMemoryItems(items, upsert: false, context: context).compactMap { $0 }.count, 0)
        for i in 0..<12 {
            try conn.addAgentData(
                AgentData(
                    id: "d\(i)", agentID: "a", timestamp: now, dataType: "t",
                    expiration: i < 9 ? now.adding(seconds: -1) : nil), context: context)
        }
        XCTAssertEqual(try conn.cleanupExpired(context: context), 39)
        XCTAssertEqual(try conn.cleanupExpired(context: context), 0)
        XCTAssertEqual(
            try conn.conversationHistory(HistoryQuery(userID: "u1", limit: 100), context: context).items.count, 20)
        // Even with an earlier "now", the deleted rows are gone for good.
        let earlier = CallContext(now: now.adding(seconds: -10))
        XCTAssertEqual(
            try conn.conversationHistory(HistoryQuery(userID: "u1", limit: 100), context: earlier).items.count, 20)
        XCTAssertEqual(
            try conn.listAgentData(AgentDataQuery(agentID: "a", limit: 100), context: earlier).items.count, 3)
        XCTAssertEqual(try conn.cleanupExpired(context: CallContext(now: now.adding(seconds: 100))), 10)
    }

    func testHealthAndStatistics() throws {
        let h = connection.health(context: context)
        XCTAssertEqual(h.status, .healthy)
        XCTAssertEqual(h.details["sqlite_path"], .string(backend.path))
        XCTAssertNotNil(h.details["sqlite_latency_ms"]?.numberValue)
        let second = try backend.makeConnection()
        XCTAssertEqual(backend.statistics()["sqlite_connections"], .number(2))
        second.close()
        second.close()
        XCTAssertEqual(backend.statistics()["connection_pool_size"], .number(1))
        XCTAssertEqual(backend.statistics()["indexed_users"], .number(0))
    }

    func testUseAfterCloseIsAnErrorNotACrash() {
        connection.close()
        assertThrows(.connection) { try self.connection.getMemoryItem(id: "m1", context: self.context) }
        XCTAssertEqual(connection.health(context: context).status, .unhealthy)
    }

    func testConnectionAfterShutdownIsRefused() {
        backend.shutdown()
        assertThrows(.connection) { try self.backend.makeConnection() }
    }

    func testSQLiteErrorsMapToTheHierarchy() {
        XCTAssertEqual(SQLiteResult.error(5, db: nil, "sqlite3_step(x)").type, .connection)
        XCTAssertEqual(
            SQLiteResult.error(5, db: nil, "sqlite3_step(x)").message, "sqlite3_step(x): database is locked (5)")
        XCTAssertEqual(SQLiteResult.error(6, db: nil, "x").type, .connection)
        XCTAssertEqual(SQLiteResult.error(2067, db: nil, "x").type, .duplicate)  // SQLITE_CONSTRAINT_UNIQUE
        XCTAssertEqual(SQLiteResult.error(10, db: nil, "x").type, .storage)
        XCTAssertEqual(SQLiteResult.error(1, db: nil, "sqlite3_prepare_v3(bad)").type, .operation)
    }

    func testBusyDatabaseIsAConnectionError() throws {
        // Another process-like writer holds the write lock past the busy timeout.
        let blocker = try SQLiteDatabase(path: backend.path, busyTimeoutMilliseconds: 10)
        defer { blocker.close() }
        try blocker.exec("BEGIN IMMEDIATE", name: "begin")
        let impatient = try SQLiteDatabase(path: backend.path, busyTimeoutMilliseconds: 10)
        defer { impatient.close() }
        do {
            try impatient.transaction { () throws(MemoryError) in }
            XCTFail("expected busy")
        } catch {
            XCTAssertEqual(error.type, .connection)
            XCTAssertTrue(error.message.contains("sqlite3_step(begin)"), error.message)
        }
        try blocker.exec("ROLLBACK", name: "rollback")
    }

    func testCorruptMetadataIsAnErrorNotACrash() throws {
        try connection.addMemoryItem(item("bad"), upsert: false, context: context)
        let db = try SQLiteDatabase(path: backend.path, busyTimeoutMilliseconds: 100)
        try db.exec("UPDATE memory_items SET metadata = '{oops', embedding = x'0102' WHERE id = 'bad'", name: "corrupt")
        db.close()
        assertThrows(.storage) { try self.connection.getMemoryItem(id: "bad", context: self.context) }
        // The search index leaves the broken embedding out instead of failing.
        XCTAssertEqual(
            try connection.semanticSearch(
                SearchQuery(userID: "u1", embedding: [Float](repeating: 1, count: 8)), context: context
            ).count, 0)
    }

    func testConcurrentWritersThroughEightConnectionsLoseNothing() throws {
        let perThread = 150
        let connections = try (0..<8).map { _ in try backend.makeConnection() }
        defer { for c in connections { c.close() } }
        let failures = FailureCount()
        let ctx = context
        let box = ConnectionsBox(connections: connections)
        runOnThreads(8) { t in
            let conn = box.connections[t]
            var rng = SeededRandom(seed: UInt64(t))
            for i in 0..<perThread {
                let id = "t\(t)-\(i)"
                let it = MemoryItem(
                    id: id, userID: "u\(t % 3)", sessionID: "s",
                    timestamp: Timestamp(seconds: 1_700_000_000 + Int64(i)),
                    itemType: "conversation", textContent: id, embedding: rng.vector(8),
                    metadata: ["content_hash": .string(SHA256.hexDigest(id))])
                do {
                    if i % 10 == 0 {
                        let r = try conn.addMemoryItems([it], upsert: false, context: ctx)
                        if r[0] != nil { failures.add() }
                    } else {
                        try conn.addMemoryItem(it, upsert: false, context: ctx)
                    }
                    if i % 25 == 0 {
                        _ = try conn.semanticSearch(
                            SearchQuery(userID: "u\(t % 3)", embedding: rng.vector(8)), context: ctx)
                    }
                } catch {
                    failures.add()
                }
            }
        }
        XCTAssertEqual(failures.value, 0)
        var total = 0
        for u in 0..<3 {
            var cursor: PageCursor?
            repeat {
                let page = try connection.conversationHistory(
                    HistoryQuery(userID: "u\(u)", limit: 1000, cursor: cursor), context: context)
                total += page.items.count
                cursor = page.nextPageToken.isEmpty ? nil : PageCursor(token: page.nextPageToken)
            } while cursor != nil
            // The index saw every write too.
            let hits = try connection.semanticSearch(
                SearchQuery(userID: "u\(u)", embedding: [Float](repeating: 1, count: 8), topK: 1000), context: context)
            XCTAssertEqual(hits.count, [3, 3, 2][u] * perThread)
        }
        XCTAssertEqual(total, 8 * perThread)
    }
}

/// A thread-safe counter for the concurrency test.
final class FailureCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() {
        lock.lock()
        count += 1
        lock.unlock()
    }
    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }
}

/// Runs `body(i)` for i in 0..<n, each on its own thread, and waits for all.
func runOnThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let finished = DispatchSemaphore(value: 0)
    for i in 0..<n {
        Thread.detachNewThread {
            body(i)
            finished.signal()
        }
    }
    for _ in 0..<n { finished.wait() }
}

/// Hands each thread its own connection; `@unchecked Sendable` because thread `i` only touches `connections[i]`.
struct ConnectionsBox: @unchecked Sendable {
    let connections: [StoreConnection]
}
