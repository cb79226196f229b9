import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryWire
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The wire protocol of SPEC §2: multiplexing, deadlines, cancel, GoAway on violations, admission control.
final class ProtocolTests: XCTestCase {
    var daemon: DaemonProcess!

    override func tearDown() {
        if let daemon {
            XCTAssertEqual(daemon.stop(), 0, "memoryd should exit 0 on SIGTERM\n\(daemon.log(tail: 2000))")
            daemon.removeDirectory()
        }
    }

    private func items(_ n: Int, prefix: String, user: String = "u") -> [MemoryItem] {
        (0..<n).map {
            MemoryItem(id: "\(prefix)\($0)", userID: user, textContent: String(repeating: "text \($0) ", count: 20))
        }
    }

    /// Asserts the server sent a GoAway with `code` and then closed the connection.
    private func assertGoAwayAndClose(
        _ conn: ClientConnection, code: StatusCode, containing text: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            let frame = try conn.readFrame(timeoutMs: 10_000)
            guard case .goAway(let g) = frame else {
                XCTFail("expected GoAway, got \(frame)", file: file, line: line)
                return
            }
            XCTAssertEqual(g.code, code, g.message, file: file, line: line)
            XCTAssertTrue(
                g.message.contains(text), "GoAway message \"\(g.message)\" lacks \"\(text)\"", file: file, line: line)
            let rest = try conn.readUntilClosed(timeoutMs: 10_000)
            XCTAssertEqual(rest.count, 0, "nothing after the GoAway", file: file, line: line)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
    }

    func test200CallsMultiplexedOnOneConnectionAnsweredOutOfOrder() throws {
        daemon = try startDaemon()
        let conn = try daemon.connection()
        // A slow batch first, then 199 quick calls: the quick ones overtake it.
        let slow = try conn.start(.addMemoryItems(items: items(3000, prefix: "slow"), upsert: false))
        var ids: [UInt64: MemoryMethod] = [slow: .addMemoryItems]
        for i in 0..<199 {
            let req: MethodRequest = i % 3 == 0 ? .ping : i % 3 == 1 ? .getMemoryItem(id: "missing\(i)") : .healthCheck
            ids[try conn.start(req)] = req.method
        }
        var order: [UInt64] = []
        while order.count < 200 {
            guard case .response(let r) = try conn.readFrame(timeoutMs: 60_000) else { continue }
            let method = try XCTUnwrap(ids[r.id], "response to an id never sent: \(r.id)")
            order.append(r.id)
            switch method {
            case .getMemoryItem: XCTAssertEqual(r.error?.type, .notFound)
            case .addMemoryItems:
                XCTAssertNil(r.error)
                guard case .addMemoryItems(let results) = try PayloadCodec.decodeResponse(.addMemoryItems, r.payload)
                else { return XCTFail() }
                XCTAssertEqual(results.count, 3000)
                XCTAssertTrue(results.allSatisfy { $0.error == nil })
            default: XCTAssertNil(r.error)
            }
        }
        XCTAssertEqual(Set(order), Set(ids.keys), "every call answered exactly once")
        XCTAssertNotEqual(order, order.sorted(), "responses came back out of order")
        XCTAssertNotEqual(order.first, slow, "the slow call did not hold up the others")
    }

    func testDeadlineExceededAbandonsQueuedWork() throws {
        daemon = try startDaemon(["MEMORYD_WORKERS": "1"])
        let conn = try daemon.connection()
        // Occupy the only worker, then queue an add with a 1 ms deadline behind it.
        let slow = try conn.start(.addMemoryItems(items: items(3000, prefix: "s"), upsert: false))
        let late = try conn.start(
            .addMemoryItem(item: MemoryItem(id: "late", userID: "u"), upsert: false, rejectDuplicateContent: false),
            timeoutMs: 1)
        let r = try conn.waitResponse(late, timeoutMs: 30_000)
        XCTAssertEqual(r.error?.code, .deadlineExceeded)
        XCTAssertEqual(r.error?.type, .unspecified)
        XCTAssertNil(try conn.waitResponse(slow, timeoutMs: 60_000).error)
        let client = try daemon.client()
        assertThrows(.notFound) { try client.getMemoryItem("late") }
    }

    func testCancelDropsACallThatHasNotStarted() throws {
        daemon = try startDaemon(["MEMORYD_WORKERS": "1"])
        let conn = try daemon.connection()
        let slow = try conn.start(.addMemoryItems(items: items(3000, prefix: "s"), upsert: false))
        let doomed = try conn.start(
            .addMemoryItem(item: MemoryItem(id: "doomed", userID: "u"), upsert: false, rejectDuplicateContent: false))
        try conn.send(.cancel(id: doomed))
        let r = try conn.waitResponse(doomed, timeoutMs: 30_000)
        XCTAssertEqual(r.error?.code, .cancelled)
        XCTAssertNil(try conn.waitResponse(slow, timeoutMs: 60_000).error)
        // Cancelling an id that is not in flight is harmless.
        try conn.send(.cancel(id: 999))
        XCTAssertNil(try conn.waitResponse(try conn.start(.ping), timeoutMs: 10_000).error)
        assertThrows(.notFound) { try daemon.client().getMemoryItem("doomed") }
    }

    func testACancelledRunningCallIsStillAnsweredAtItsDeadline() throws {
        // Two workers: one will be stuck in a write behind another process's lock, the other answers the rest.
        daemon = try startDaemon(["MEMORYD_WORKERS": "2"])
        let client = try daemon.client()
        XCTAssertEqual(try client.addMemoryItem(MemoryItem(id: "first", userID: "u")), "first")
        let locker = try DatabaseLocker(database: daemon.dataDir + "/default.sqlite3")
        defer { try? locker.release() }
        let conn = try daemon.connection()
        // sqlite waits 5 s for the lock; the call's deadline is shorter, so it must end at the deadline.
        let write = try conn.start(
            .addMemoryItem(item: MemoryItem(id: "locked", userID: "u"), upsert: false, rejectDuplicateContent: false),
            timeoutMs: 3500)
        while try client.healthCheck().details["connections_in_use"]?.numberValue ?? 0 < 2 { usleep(1000) }  // it runs
        try conn.send(.cancel(id: write))
        // Many more calls answered meanwhile: the deadline heap sweeps its leftovers, and must keep the
        // cancelled call, which is still running.
        let get = PayloadCodec.encodeRequest(.getMemoryItem(id: "missing"))
        var next: UInt64 = 1000
        for _ in 0..<21 {
            var bytes: [UInt8] = []
            let ids = (0..<200).map { i in next + UInt64(i) }
            next += 200
            for id in ids {
                bytes += FrameCodec.encode(
                    .request(RequestFrame(id: id, method: MemoryMethod.getMemoryItem.path, payload: get)))
            }
            try conn.writeRaw(bytes)
            for id in ids { XCTAssertEqual(try conn.waitResponse(id, timeoutMs: 60_000).error?.type, .notFound) }
        }
        let r = try conn.waitResponse(write, timeoutMs: 60_000)
        XCTAssertEqual(r.error?.code, .deadlineExceeded, "\(String(describing: r.error))")
        XCTAssertTrue(locker.isHolding, "answered while the lock was still held")
    }

    func testProtocolViolationsGetGoAwayAndCloseWhileOthersKeepWorking() throws {
        daemon = try startDaemon()
        let bystander = try daemon.client()
        XCTAssertNoThrow(try bystander.ping())

        var c = try daemon.connection()
        try c.writeRaw([0xff, 0xff, 0xff, 0xff])
        assertGoAwayAndClose(c, code: .resourceExhausted, containing: "over the limit")

        c = try daemon.connection()
        try c.writeRaw([0, 0, 0, 0])
        assertGoAwayAndClose(c, code: .invalidArgument, containing: "length 0")

        c = try daemon.connection()
        try c.writeRaw([0, 0, 0, 5] + Array("hello".utf8))
        assertGoAwayAndClose(c, code: .invalidArgument, containing: "not a valid")

        c = try daemon.connection()
        try c.send(.response(ResponseFrame(id: 1)))
        assertGoAwayAndClose(c, code: .invalidArgument, containing: "Response")

        c = try daemon.connection()
        try c.send(.request(RequestFrame(id: 0, method: MemoryMethod.ping.path)))
        assertGoAwayAndClose(c, code: .invalidArgument, containing: "id 0")

        // A duplicate id while the first is in flight (the slow batch keeps it in flight).
        c = try daemon.connection()
        let dup = FrameCodec.encode(
            .request(
                RequestFrame(
                    id: 9, method: MemoryMethod.addMemoryItems.path,
                    payload: PayloadCodec.encodeRequest(.addMemoryItems(items: items(2000, prefix: "d"), upsert: false))
                )))
        try c.writeRaw(dup + dup)
        var sawGoAway = false
        while true {
            guard let f = try? c.readFrame(timeoutMs: 30_000) else { break }
            if case .goAway(let g) = f {
                sawGoAway = true
                XCTAssertTrue(g.message.contains("already in flight"), g.message)
                XCTAssertEqual(g.lastRequestID, 9)
            }
        }
        XCTAssertTrue(sawGoAway)

        // A truncated frame, then the client closes: the daemon just drops it.
        c = try daemon.connection()
        try c.writeRaw([0, 0, 0, 100, 1, 2, 3])
        c.close()

        // Garbage after a valid frame: the valid call is answered, then GoAway.
        c = try daemon.connection()
        try c.writeRaw(
            FrameCodec.encode(.request(RequestFrame(id: 3, method: MemoryMethod.ping.path))) + [
                0, 0, 0, 3, 0xde, 0xad, 0xbe,
            ])
        guard case .response(let pong) = try c.readFrame(timeoutMs: 10_000) else {
            return XCTFail("expected the ping's response")
        }
        XCTAssertEqual(pong.id, 3)
        assertGoAwayAndClose(c, code: .invalidArgument, containing: "not a valid")

        XCTAssertNoThrow(try bystander.ping(), "the other connection is unaffected")
        XCTAssertEqual(try bystander.healthCheck().status, "healthy")
    }

    func testDeeplyNestedFrameIsRefusedWithoutCrashing() throws {
        daemon = try startDaemon()
        // 100,000 nested length-delimited fields would overflow protobuf-c's recursion.
        var body: [UInt8] = [0x08, 0x01]
        for _ in 0..<20_000 {
            var len = body.count
            var varint: [UInt8] = []
            repeat {
                varint.append(UInt8(len & 0x7f) | (len > 0x7f ? 0x80 : 0))
                len >>= 7
            } while len > 0
            body = [0x0a] + varint + body
            if body.count > 3_000_000 { break }
        }
        let c = try daemon.connection()
        let n = UInt32(body.count)
        try c.writeRaw([UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + body)
        assertGoAwayAndClose(c, code: .invalidArgument, containing: "deeper")
        XCTAssertNoThrow(try daemon.client().ping())
    }

    func test200ConcurrentConnections() throws {
        daemon = try startDaemon()
        var conns: [ClientConnection] = []
        for _ in 0..<200 { conns.append(try daemon.connection()) }
        var ids: [UInt64] = []
        for (i, c) in conns.enumerated() {
            ids.append(
                try c.start(
                    .addMemoryItem(
                        item: MemoryItem(id: "c\(i)", userID: "u\(i % 7)", textContent: "conn \(i)"),
                        upsert: false, rejectDuplicateContent: false)))
        }
        for (i, c) in conns.enumerated() {
            guard case .addMemoryItem(let id) = try c.wait(ids[i], method: .addMemoryItem, timeoutMs: 60_000) else {
                return XCTFail()
            }
            XCTAssertEqual(id, "c\(i)")
        }
        let h = try daemon.client().healthCheck()
        XCTAssertEqual(h.details["client_connections"], .number(201))
        for c in conns { c.close() }
        let client = try daemon.client()
        for i in stride(from: 0, to: 200, by: 17) {
            XCTAssertEqual(try client.getMemoryItem("c\(i)").textContent, "conn \(i)")
        }
    }

    func testMaxConnectionsRefusesTheExtraConnection() throws {
        daemon = try startDaemon(["MEMORYD_MAX_CONNECTIONS": "2"])
        let a = try daemon.client(), b = try daemon.client()
        XCTAssertNoThrow(try a.ping())
        XCTAssertNoThrow(try b.ping())
        let c = try daemon.connection()
        assertGoAwayAndClose(c, code: .resourceExhausted, containing: "max_connections")
        XCTAssertNoThrow(try a.ping())
    }

    func testFullQueueAnswersResourceExhausted() throws {
        daemon = try startDaemon(["MEMORYD_WORKERS": "1", "MEMORYD_QUEUE_CAPACITY": "2"])
        let conn = try daemon.connection()
        var ids: [UInt64] = []
        ids.append(try conn.start(.addMemoryItems(items: items(3000, prefix: "q"), upsert: false)))
        for i in 0..<6 { ids.append(try conn.start(.getMemoryItem(id: "x\(i)"))) }
        var exhausted = 0
        for id in ids {
            let r = try conn.waitResponse(id, timeoutMs: 60_000)
            if r.error?.code == .resourceExhausted { exhausted += 1 }
        }
        XCTAssertGreaterThanOrEqual(exhausted, 1, "some calls found the queue full")
        XCTAssertNoThrow(try daemon.client().ping())
    }

    func testAnswerLargerThanAFrameIsPagedNotSent() throws {
        daemon = try startDaemon(["MEMORYD_MAX_FRAME_BYTES": "65536", "MEMORYD_MAX_OUTPUT_BYTES": "1048576"])
        let client = try daemon.client()
        for batch in 0..<3 {
            let big = (0..<10).map {
                MemoryItem(id: "big\(batch)-\($0)", userID: "u", textContent: String(repeating: "y", count: 3000))
            }
            XCTAssertTrue(try client.addMemoryItems(big).allSatisfy { $0.error == nil })
        }
        // 30 items of 3 KB do not fit in 64 KiB: the page stops before the one that would not fit.
        let page = try client.conversationHistory(HistoryRequest(userID: "u", limit: 30))
        XCTAssertGreaterThan(page.items.count, 0)
        XCTAssertLessThan(page.items.count, 30)
        XCTAssertFalse(page.nextPageToken.isEmpty)
        XCTAssertEqual(try client.conversationHistory(HistoryRequest(userID: "u", limit: 5)).items.count, 5)
    }
}
