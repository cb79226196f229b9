import Foundation
import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import MemoryWire
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A write against a database locked by another process, on a daemon with one worker: answered
/// DEADLINE_EXCEEDED within its deadline, the worker free for the next call while the lock is still held,
/// the write not committed once the lock goes, and its retry accepted.
final class SQLiteDeadlineTests: XCTestCase {
    func testAWriteOnALockedDatabaseEndsAtItsDeadlineAndTheWorkerIsFreeAgain() throws {
        let daemon = try startDaemon(["MEMORYD_WORKERS": "1"])
        defer {
            daemon.stop()
            daemon.removeDirectory()
        }
        let client = try daemon.client()
        _ = try client.addMemoryItem(MemoryItem(id: "warm", userID: "u", textContent: "before the lock"))
        let conn = try daemon.connection()
        defer { conn.close() }

        let locker = try DatabaseLocker(database: daemon.dataDir + "/default.sqlite3")
        let item = MemoryItem(
            id: "late", userID: "u", textContent: "written under a lock", embedding: [1, 0, 0, 0, 0, 0, 0, 0])
        let t0 = monotonicNanos()
        let write = try conn.start(
            .addMemoryItem(item: item, upsert: false, rejectDuplicateContent: false), timeoutMs: 100)
        let answer = try conn.waitResponse(write, timeoutMs: 10_000)
        let writeMs = Double(monotonicNanos() - t0) / 1e6
        XCTAssertEqual(answer.error?.code, .deadlineExceeded, "\(String(describing: answer.error))")

        // The one worker serves the next call while the other process still holds the lock: it gave the
        // write up at its deadline. (Before, it waited 5 s for the lock, and this read's 2 s ran out.)
        let t1 = monotonicNanos()
        let read = try conn.call(.getMemoryItem(id: "warm"), timeoutMs: 2000)
        let readMs = Double(monotonicNanos() - t1) / 1e6
        guard case .getMemoryItem(let warm) = read else { return XCTFail("unexpected \(read)") }
        XCTAssertEqual(warm.textContent, "before the lock")
        XCTAssertTrue(locker.isHolding)
        // The health check's sqlite probe is a read too, and shows the index's figures.
        let health = try client.healthCheck()
        XCTAssertEqual(health.details["index_budget_bytes"], .number(512 * 1024 * 1024))
        XCTAssertNotNil(health.details["vector_kernel"])
        try locker.release()

        // The write answered DEADLINE_EXCEEDED was not committed when the lock went away ...
        assertThrows(.notFound) { try client.getMemoryItem("late") }
        // ... and retrying it is safe, even twice (the second meets the first's commit).
        XCTAssertEqual(try client.addMemoryItem(item), "late")
        XCTAssertEqual(try client.addMemoryItem(item), "late")
        XCTAssertEqual(try client.getMemoryItem("late").textContent, "written under a lock")
        XCTAssertEqual(
            try client.semanticSearch(SearchRequest(userID: "u", queryEmbedding: item.embedding, topK: 1)).map(
                \.item.id), ["late"])
        print(
            "sqlite deadline figures: write with a 100 ms deadline answered in \(fmt(writeMs)) ms; next call on the one worker answered in \(fmt(readMs)) ms while the lock was still held"
        )
    }

    private func fmt(_ v: Double) -> String { String(format: "%.1f", v) }
}
