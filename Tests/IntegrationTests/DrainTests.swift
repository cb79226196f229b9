import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryWire
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM's drain is bounded by `drain_timeout_ms`, even when a worker is stuck inside a backend call that
/// will not return for ten minutes: memoryd answers or closes what it can, exits without joining the stuck
/// worker, and says so (exit status 75, an error line naming the call). The checks wait for events (the
/// request reaching the backend, the GoAway, the exit), never for time.
final class DrainTests: XCTestCase {
    func testDrainEndsAtItsTimeoutWhileWorkersAreStuckInTheBackend() throws {
        let hole = try BlackHole()
        defer { hole.stop() }
        // Three workers: two will be stuck in backend calls, one stays idle.
        let daemon = try startDaemonWithHangingBackend(
            hole, ["MEMORYD_DRAIN_TIMEOUT_MS": "300", "MEMORYD_WORKERS": "3"])
        defer { daemon.removeDirectory() }
        let conn = try daemon.connection()
        let oneDay: UInt64 = 86_400_000
        let stuck = try conn.start(
            .addMemoryItem(item: MemoryItem(id: "stuck", userID: "u"), upsert: false, rejectDuplicateContent: false),
            timeoutMs: oneDay)
        try hole.waitForBytes()  // one worker is inside the backend call, for ten minutes
        let seen = hole.bytesReceived
        let alsoStuck = try conn.start(.getMemoryItem(id: "also-stuck"), timeoutMs: oneDay)
        try hole.waitForBytes(after: seen)  // and a second one
        XCTAssertNil(try conn.waitResponse(try conn.start(.ping), timeoutMs: 30_000).error, "the loop still answers")

        daemon.signal(SIGTERM)
        var goAway: GoAwayFrame?
        var answered: [UInt64] = []
        while let frame = try? conn.readFrame(timeoutMs: 120_000) {  // until memoryd closes the connection
            switch frame {
            case .goAway(let g): goAway = g
            case .response(let r): answered.append(r.id)
            default: break
            }
        }
        XCTAssertEqual(goAway?.code, .unavailable)
        XCTAssertGreaterThanOrEqual(goAway?.lastRequestID ?? 0, alsoStuck, "both calls were accepted")
        XCTAssertFalse(answered.contains(stuck) || answered.contains(alsoStuck), "the stuck calls have no answer")

        // memoryd exits while its workers are still inside their calls (ten minutes from their end).
        let status = daemon.waitForExit(timeout: 120)
        XCTAssertNotNil(status, "memoryd did not exit while workers were stuck\n\(daemon.log(tail: 3000))")
        XCTAssertEqual(status, 75, "a drain that left workers behind is not a clean stop\n\(daemon.log(tail: 3000))")
        let log = daemon.log()
        let lines = log.split(separator: "\n").filter { $0.contains("drain: a worker is still inside a backend call") }
        XCTAssertEqual(lines.count, 2, "the two busy workers, not the idle one\n\(log)")
        XCTAssertTrue(lines.contains { $0.contains("method=AddMemoryItem") }, log)
        XCTAssertTrue(lines.contains { $0.contains("method=GetMemoryItem") }, log)
        if status == nil { daemon.kill9() }
    }

    func testDrainWithIdleWorkersIsCleanAndImmediate() throws {
        let daemon = try startDaemon(["MEMORYD_DRAIN_TIMEOUT_MS": "3600000"])
        defer { daemon.removeDirectory() }
        let client = try daemon.client()
        XCTAssertEqual(try client.addMemoryItem(MemoryItem(id: "kept", userID: "u")), "kept")
        client.close()
        // No connection and no call: the hour-long drain timeout is not waited for.
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 120), 0, daemon.log(tail: 3000))
        try daemon.start()
        XCTAssertEqual(try daemon.client().getMemoryItem("kept").id, "kept")
        XCTAssertEqual(daemon.stop(), 0)
    }
}
