import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryWire
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// What the daemon holds on to, read where an operator reads it (RSS, HealthCheck, answers): finished calls
/// keep no payload, idle connections keep no frame buffer, a protocol violation leaves no call counted, and
/// the queue is bounded in bytes as well as in calls. Every check waits for events (answers, closes), never for
/// time.
final class ResourceTests: XCTestCase {
    var daemon: DaemonProcess!

    override func tearDown() {
        if let daemon {
            XCTAssertEqual(daemon.stop(), 0, "memoryd should exit 0 on SIGTERM\n\(daemon.log(tail: 2000))")
            daemon.removeDirectory()
        }
    }

    /// A request frame of about `bytes` bytes: `method`'s payload plus an unknown field (ignored by the
    /// server) that makes it big.
    static func bigRequest(id: UInt64, _ request: MethodRequest, bytes: Int, timeoutMs: UInt64 = 0) -> [UInt8] {
        var payload = PayloadCodec.encodeRequest(request)
        let filler = max(0, bytes - payload.count - 64)
        payload.append(0x7a)  // field 15, length-delimited: unknown to every request message
        var n = filler
        repeat {
            payload.append(UInt8(n & 0x7f) | (n > 0x7f ? 0x80 : 0))
            n >>= 7
        } while n > 0
        payload += [UInt8](repeating: 0x61, count: filler)
        return FrameCodec.encode(
            .request(RequestFrame(id: id, method: request.method.path, timeoutMs: timeoutMs, payload: payload)))
    }

    private func rssMiB() throws -> Double {
        Double(try XCTUnwrap(ProcessFigures.rssKiB(daemon.pid), "VmRSS of memoryd")) / 1024
    }

    private func callsInFlight() throws -> Double? {
        try daemon.client().healthCheck().details["calls_in_flight"]?.numberValue
    }

    // MARK: - Item 2: protocol violations and the in-flight count

    func testProtocolViolationsWithCallsInFlightLeaveNoCallCounted() throws {
        daemon = try startDaemon(["MEMORYD_WORKERS": "1"])
        let get = PayloadCodec.encodeRequest(.getMemoryItem(id: "missing"))
        for _ in 0..<20 {
            let c = try daemon.connection()
            var bytes: [UInt8] = []
            for id in 1...43 {
                bytes += FrameCodec.encode(
                    .request(RequestFrame(id: UInt64(id), method: MemoryMethod.getMemoryItem.path, payload: get)))
            }
            try c.writeRaw(bytes + [0, 0, 0, 0])  // 43 calls, then a zero length: a protocol violation
            var goAway: GoAwayFrame?
            while let frame = try? c.readFrame(timeoutMs: 30_000) {  // until the daemon closes it
                if case .goAway(let g) = frame { goAway = g }
            }
            XCTAssertEqual(goAway?.code, .invalidArgument)
        }
        // Only the HealthCheck itself is in flight once every violating connection is closed.
        XCTAssertEqual(try callsInFlight(), 1)
    }

    // MARK: - Item 1: finished calls and their payloads

    func testAnsweredCallsWithLongDeadlinesDoNotKeepTheirPayloads() throws {
        daemon = try startDaemon()
        let c = try daemon.connection()
        let oneDay: UInt64 = 86_400_000
        try c.writeRaw(Self.bigRequest(id: 1, .getMemoryItem(id: "warm-up"), bytes: 1 << 20, timeoutMs: oneDay))
        XCTAssertEqual(try c.waitResponse(1, timeoutMs: 60_000).error?.type, .notFound)
        let before = try rssMiB()
        // 150 answered calls of 1 MiB each, each with a one-day deadline; 4 in flight at a time.
        var next: UInt64 = 2
        for _ in 0..<150 / 4 + 1 {
            let ids = (0..<4).map { _ in
                defer { next += 1 }
                return next
            }
            for id in ids {
                try c.writeRaw(
                    Self.bigRequest(id: id, .getMemoryItem(id: "big-\(id)"), bytes: 1 << 20, timeoutMs: oneDay))
            }
            for id in ids { XCTAssertEqual(try c.waitResponse(id, timeoutMs: 60_000).error?.type, .notFound) }
        }
        let after = try rssMiB()
        print("RSS before \(before) MiB, after 152 answered 1 MiB calls with one-day deadlines \(after) MiB")
        XCTAssertLessThan(
            after - before, 48, "answered calls must not keep their payloads (RSS \(before) -> \(after) MiB)")
        XCTAssertEqual(try callsInFlight(), 1)
    }

    // MARK: - Item 4: idle connections and their reassembly buffers

    func testIdleConnectionsDoNotKeepTheirLastFrame() throws {
        daemon = try startDaemon()
        let warm = try daemon.connection()
        try warm.writeRaw(Self.bigRequest(id: 1, .ping, bytes: 520_000))
        XCTAssertNil(try warm.waitResponse(1, timeoutMs: 60_000).error)
        let before = try rssMiB()
        // 150 connections each send one 520,000-byte frame (a Ping with an unknown field), get the answer and
        // stay open, idle.
        var idle: [ClientConnection] = []
        for _ in 0..<150 {
            let c = try daemon.connection()
            try c.writeRaw(Self.bigRequest(id: 1, .ping, bytes: 520_000))
            XCTAssertNil(try c.waitResponse(1, timeoutMs: 60_000).error)
            idle.append(c)
        }
        let after = try rssMiB()
        print("RSS before \(before) MiB, with 150 idle connections that each sent 520,000 bytes \(after) MiB")
        XCTAssertLessThan(
            after - before, 40, "idle connections must not keep their frame buffers (RSS \(before) -> \(after) MiB)")
        XCTAssertEqual(try daemon.client().healthCheck().details["client_connections"], .number(152))
        for c in idle { c.close() }
    }

    // MARK: - Item 3: the queue is bounded in bytes

    func testQueuedRequestBytesAreBoundedByQueueMaxBytes() throws {
        let hole = try BlackHole()
        defer { hole.stop() }
        let d = try startDaemonWithHangingBackend(
            hole,
            [
                "MEMORYD_MAX_FRAME_BYTES": "1048576", "MEMORYD_QUEUE_MAX_BYTES": "2097152",
                "MEMORYD_DRAIN_TIMEOUT_MS": "100",
            ])
        defer { d.removeDirectory() }
        let conn = try d.connection()
        let oneDay: UInt64 = 86_400_000
        _ = try conn.start(.getMemoryItem(id: "stuck"), timeoutMs: oneDay)
        try hole.waitForBytes()  // the one worker is inside the backend: the queue does not move
        // Three requests of 700,000 bytes: two fit in queue_max_bytes (2 MiB), the third does not.
        for id: UInt64 in 11...13 {
            try conn.writeRaw(Self.bigRequest(id: id, .getMemoryItem(id: "q\(id)"), bytes: 700_000, timeoutMs: oneDay))
        }
        let refused = try conn.waitResponse(13, timeoutMs: 60_000)
        XCTAssertEqual(refused.error?.code, .resourceExhausted)
        XCTAssertTrue(
            refused.error?.message.contains("queue_max_bytes") ?? false, "\(String(describing: refused.error))")
        XCTAssertNil(try conn.waitResponse(try conn.start(.ping), timeoutMs: 30_000).error, "the connection stays")
        conn.close()
        XCTAssertEqual(d.stop(), 75, "the drain ends without the stuck worker\n\(d.log(tail: 2000))")
    }
}
