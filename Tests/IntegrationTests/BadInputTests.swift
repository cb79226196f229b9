import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import MemoryWire
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Bad input over the socket (SPEC §2-§4): every case gets the SPEC's error or a GoAway, nothing is stored
/// for a rejected call, and the daemon keeps serving a bystander connection throughout. One daemon serves
/// the whole class; after every case it must still run and answer the bystander, and the last case (tests run
/// in name order) checks that it exits 0 on SIGTERM after everything sent to it. Checks live in tests, not in
/// the class tearDown, where Linux XCTest drops failures.
/// ProtocolTests covers the basic violations (length 0 and 0xffffffff, "hello", a Response, id 0,
/// duplicate in-flight id, garbage after a valid frame, nesting); this extends them.
final class BadInputTests: XCTestCase {
    nonisolated(unsafe) static var daemon: DaemonProcess!
    nonisolated(unsafe) static var bystander: MemoryClient!
    /// Why the shared daemon did not start: every case fails with it (a `try!` would crash the whole run).
    nonisolated(unsafe) static var startError: Error?
    /// Set by the last case once it has stopped the daemon.
    nonisolated(unsafe) static var stopped = false
    var daemon: DaemonProcess { Self.daemon }

    override class func setUp() {
        super.setUp()
        do {
            daemon = try startDaemon()
            bystander = try daemon.client()
        } catch {
            startError = error
        }
    }

    override class func tearDown() {
        // Clean-up only: the exit status is checked by the last case.
        bystander?.close()
        if let daemon {
            if daemon.isRunning { daemon.kill9() }
            daemon.removeDirectory()
        }
        super.tearDown()
    }

    override func setUpWithError() throws {
        try super.setUpWithError()
        if let e = Self.startError { throw e }
        guard !Self.stopped else { throw DaemonError("the shared daemon was stopped by the last case already") }
    }

    override func tearDown() {
        // After every case: the daemon still runs and answers another connection.
        if Self.startError == nil && !Self.stopped {
            XCTAssertTrue(daemon.isRunning, "memoryd died during this case\n\(daemon.log(tail: 3000))")
            XCTAssertNoThrow(try Self.bystander.ping(), "the bystander connection must keep working")
        }
        super.tearDown()
    }

    /// Runs last (cases run in name order, and lower case sorts after upper): after all the bad input, memoryd still drains and exits 0.
    func testzzLastAfterAllTheBadInputTheDaemonExitsZeroOnSIGTERM() throws {
        Self.bystander.close()
        Self.stopped = true
        XCTAssertEqual(
            daemon.stop(), 0, "memoryd should exit 0 on SIGTERM after the bad input\n\(daemon.log(tail: 3000))")
    }

    // MARK: - Helpers

    private func frame(_ body: [UInt8]) -> [UInt8] { be32(body.count) + body }

    private func be32(_ n: Int) -> [UInt8] {
        [UInt8(n >> 24 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
    }

    private func request(id: UInt64, _ method: MemoryMethod, payload: [UInt8], metadata: [String: String] = [:])
        -> [UInt8]
    {
        FrameCodec.encode(.request(RequestFrame(id: id, method: method.path, metadata: metadata, payload: payload)))
    }

    /// Asserts a GoAway with `code` (whose message contains `text`), then the server closing.
    private func assertGoAway(
        _ conn: ClientConnection, _ code: StatusCode, _ text: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            var frame = try conn.readFrame(timeoutMs: 10_000)
            while case .response = frame { frame = try conn.readFrame(timeoutMs: 10_000) }
            guard case .goAway(let g) = frame else {
                return XCTFail("expected GoAway, got \(frame)", file: file, line: line)
            }
            XCTAssertEqual(g.code, code, g.message, file: file, line: line)
            XCTAssertTrue(g.message.contains(text), "GoAway \"\(g.message)\" lacks \"\(text)\"", file: file, line: line)
            XCTAssertEqual(
                try conn.readUntilClosed(timeoutMs: 10_000).count, 0, "nothing after GoAway", file: file, line: line)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
    }

    /// Sends one call with a raw payload and returns its error (nil when it succeeded).
    private func rawCall(_ method: MemoryMethod, _ payload: [UInt8], file: StaticString = #filePath, line: UInt = #line)
        throws -> MemoryError?
    {
        let conn = try daemon.connection()
        defer { conn.close() }
        try conn.writeRaw(request(id: 1, method, payload: payload))
        return try conn.waitResponse(1, timeoutMs: 30_000).error
    }

    private func assertValidation(
        _ method: MemoryMethod, _ payload: [UInt8], containing text: String,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let e = try rawCall(method, payload)
        XCTAssertEqual(e?.type, .validation, "\(String(describing: e))", file: file, line: line)
        XCTAssertEqual(e?.code, .invalidArgument, file: file, line: line)
        XCTAssertTrue(
            e?.message.contains(text) ?? false, "\"\(e?.message ?? "nil")\" lacks \"\(text)\"", file: file, line: line)
    }

    private func assertNotStored(_ id: String, file: StaticString = #filePath, line: UInt = #line) {
        assertThrows(.notFound, file: file, line: line) { try Self.bystander.getMemoryItem(id) }
    }

    private func add(_ item: MemoryItem) -> [UInt8] {
        PayloadCodec.encodeRequest(.addMemoryItem(item: item, upsert: false, rejectDuplicateContent: false))
    }

    // MARK: - Framing

    func testLengthJustOverTheLimitIsRefusedBeforeTheBodyArrives() throws {
        let c = try daemon.connection()
        try c.writeRaw(be32(4 * 1024 * 1024 + 1))  // no body follows: the header alone must be enough
        assertGoAway(c, .resourceExhausted, "over the limit")
    }

    func testLengthAtTheLimitWithGarbageIsUndecodable() throws {
        let c = try daemon.connection()
        try c.writeRaw(be32(4 * 1024 * 1024) + [UInt8](repeating: 0xff, count: 4 * 1024 * 1024))
        assertGoAway(c, .invalidArgument, "not a valid")
    }

    func testZeroLengthAfterAValidCallAnswersTheCallThenGoAway() throws {
        let c = try daemon.connection()
        try c.writeRaw(
            request(id: 5, .addMemoryItem, payload: add(MemoryItem(id: "bi-before-zero", userID: "u"))) + be32(0))
        // The call before the violation was accepted, then abandoned with the connection (PROTOCOL.md):
        // it may or may not have run, but never half-way.
        assertGoAway(c, .invalidArgument, "length 0")
        if let item = try? Self.bystander.getMemoryItem("bi-before-zero") { XCTAssertEqual(item.userID, "u") }
    }

    func testTruncatedHeaderThenCloseStoresNothing() throws {
        let c = try daemon.connection()
        try c.writeRaw([0, 0])
        c.close()
        let d = try daemon.connection()
        let frame = request(id: 1, .addMemoryItem, payload: add(MemoryItem(id: "bi-truncated", userID: "u")))
        try d.writeRaw(Array(frame.dropLast(3)))  // the body is 3 bytes short
        d.close()
        usleep(100_000)
        assertNotStored("bi-truncated")
    }

    func testValidFrameSentOneByteAtATimeIsAnswered() throws {
        let c = try daemon.connection()
        for b in request(id: 7, .ping, payload: []) { try c.writeRaw([b]) }
        XCTAssertNil(try c.waitResponse(7, timeoutMs: 10_000).error)
    }

    func testThousandPipelinedFramesInOneWriteAreAllAnswered() throws {
        let c = try daemon.connection()
        var bytes: [UInt8] = []
        for i in 1...1000 { bytes += request(id: UInt64(i), .ping, payload: []) }
        try c.writeRaw(bytes)
        for i in 1...1000 { XCTAssertNil(try c.waitResponse(UInt64(i), timeoutMs: 30_000).error) }
    }

    func testRandomBytesGetGoAway() throws {
        var rng = SeededRandom(42)
        for _ in 0..<5 {
            let c = try daemon.connection()
            let body = (0..<200).map { _ in UInt8.random(in: 0...255, using: &rng) }
            try c.writeRaw(frame(body))
            // Random bytes may happen to decode; either way the connection must end in a GoAway or an answer.
            if case .goAway(let g) = try c.readFrame(timeoutMs: 10_000) {
                XCTAssertTrue([.invalidArgument, .resourceExhausted].contains(g.code), g.message)
            }
        }
    }

    func testFrameWithNoKindIsAProtocolViolation() throws {
        let c = try daemon.connection()
        try c.writeRaw(frame([0x28, 0x01]))  // only an unknown field 5
        assertGoAway(c, .invalidArgument, "no kind")
    }

    func testWrongWireTypeForTheRequestFieldIsAProtocolViolation() throws {
        let c = try daemon.connection()
        try c.writeRaw(frame([0x08, 0x01]))  // Frame.request (field 1) as a varint
        assertGoAway(c, .invalidArgument, "not a valid")
    }

    func testWrongWireTypeForRequestIDIsAProtocolViolation() throws {
        let c = try daemon.connection()
        // Request { id (field 1) as length-delimited "ab" }
        try c.writeRaw(frame([0x0a, 0x04, 0x0a, 0x02, 0x61, 0x62]))
        assertGoAway(c, .invalidArgument, "not a valid")
    }

    func testInvalidUTF8InMethodIsAProtocolViolation() throws {
        let c = try daemon.connection()
        let method: [UInt8] = Array(MemoryMethod.ping.path.utf8) + [0xff, 0xfe]
        let req: [UInt8] = [0x08, 0x01, 0x12, UInt8(method.count)] + method
        try c.writeRaw(frame([0x0a, UInt8(req.count)] + req))
        assertGoAway(c, .invalidArgument, "not a valid")
    }

    func testRequestIDReusedAfterItsResponseIsFine() throws {
        let c = try daemon.connection()
        for _ in 0..<3 {
            try c.writeRaw(request(id: 11, .ping, payload: []))
            XCTAssertNil(try c.waitResponse(11, timeoutMs: 10_000).error)
        }
    }

    func testDuplicateIDInOneWriteGetsGoAwayAndTheSecondIsNotProcessed() throws {
        let c = try daemon.connection()
        let slow = PayloadCodec.encodeRequest(
            .addMemoryItems(items: (0..<2000).map { MemoryItem(id: "bi-dup-\($0)", userID: "dup") }, upsert: false))
        try c.writeRaw(
            request(id: 21, .addMemoryItems, payload: slow)
                + request(id: 21, .addMemoryItem, payload: add(MemoryItem(id: "bi-dup-second", userID: "dup"))))
        assertGoAway(c, .invalidArgument, "already in flight")
        assertNotStored("bi-dup-second")
    }

    func testClientGoAwayGetsItsCallsAnsweredThenClose() throws {
        let c = try daemon.connection()
        try c.writeRaw(
            request(id: 1, .addMemoryItem, payload: add(MemoryItem(id: "bi-client-goaway", userID: "u")))
                + FrameCodec.encode(.goAway(GoAwayFrame(code: .ok, message: "bye", lastRequestID: 1))))
        XCTAssertNil(try c.waitResponse(1, timeoutMs: 10_000).error)
        XCTAssertEqual(try c.readUntilClosed(timeoutMs: 10_000).count, 0)
        XCTAssertEqual(try Self.bystander.getMemoryItem("bi-client-goaway").userID, "u")
    }

    func testCallsAfterAClientResponseFrameAreNotProcessed() throws {
        let c = try daemon.connection()
        try c.writeRaw(
            FrameCodec.encode(.response(ResponseFrame(id: 1, payload: [1, 2])))
                + request(id: 2, .addMemoryItem, payload: add(MemoryItem(id: "bi-after-response", userID: "u"))))
        assertGoAway(c, .invalidArgument, "Response")
        assertNotStored("bi-after-response")
    }

    func testClientClosingMidFrameWithCallsInFlightLeavesTheDaemonServing() throws {
        for i in 0..<20 {
            let c = try daemon.connection()
            let slow = PayloadCodec.encodeRequest(
                .addMemoryItems(
                    items: (0..<200).map { MemoryItem(id: "bi-mid-\(i)-\($0)", userID: "mid") }, upsert: false))
            let half = request(id: 2, .ping, payload: [])
            try c.writeRaw(request(id: 1, .addMemoryItems, payload: slow) + Array(half.prefix(half.count / 2)))
            c.close()
        }
        XCTAssertNoThrow(try Self.bystander.healthCheck())
    }

    func testIdleConnectionDoesNotBlockOthersAndIsKept() throws {
        let idle = try daemon.connection()  // connects and sends nothing
        let others = try (0..<5).map { _ in try daemon.client() }
        for o in others { XCTAssertNoThrow(try o.ping()) }
        // The idle connection is kept (no idle timeout): it can still make a call later.
        usleep(300_000)
        try idle.writeRaw(request(id: 1, .ping, payload: []))
        XCTAssertNil(try idle.waitResponse(1, timeoutMs: 10_000).error)
    }

    func testHugeRequestMetadataIsIgnored() throws {
        let c = try daemon.connection()
        var metadata: [String: String] = [:]
        for i in 0..<5000 { metadata["k\(i)"] = String(repeating: "v", count: 100) }
        try c.writeRaw(request(id: 1, .ping, payload: [], metadata: metadata))
        XCTAssertNil(try c.waitResponse(1, timeoutMs: 10_000).error)
    }

    // MARK: - Methods and payloads

    func testUnknownMethodsGetUnimplementedAndTheConnectionStays() throws {
        let c = try daemon.connection()
        for (i, m) in [
            "", "/", "Ping", "/orchestra.memory.v1.MemoryService/", "/orchestra.memory.v1.MemoryService/ping",
            "/orchestra.memory.v1.MemoryService/Ping/", "/other.Service/Ping", String(repeating: "x", count: 100_000),
        ].enumerated() {
            try c.send(.request(RequestFrame(id: UInt64(i + 1), method: m)))
            let r = try c.waitResponse(UInt64(i + 1), timeoutMs: 10_000)
            XCTAssertEqual(r.error?.code, .unimplemented, m.prefix(80).description)
            XCTAssertEqual(r.error?.type, .unspecified)
            XCTAssertLessThan(r.error?.message.count ?? 0, 400, "messages quote the method, shortened")
        }
        try c.writeRaw(request(id: 99, .ping, payload: []))
        XCTAssertNil(try c.waitResponse(99, timeoutMs: 10_000).error)
    }

    func testUndecodablePayloadsAreValidationErrorsForEveryMethod() throws {
        for method in MemoryMethod.allCases {
            // A truncated length-delimited field: no protobuf message decodes from it.
            let e = try rawCall(method, [0x0a, 0x05, 0x01])
            XCTAssertEqual(e?.type, .validation, "\(method): \(String(describing: e))")
            XCTAssertTrue(e?.message.contains("not a valid") ?? false, "\(method): \(e?.message ?? "")")
        }
    }

    func testWrongWireTypeInPayloadIsAValidationError() throws {
        // AddMemoryItemRequest.item (field 1) as a varint.
        try assertValidation(.addMemoryItem, [0x08, 0x01], containing: "not a valid")
        // GetMemoryItemRequest.id (field 1) as a fixed64.
        try assertValidation(.getMemoryItem, [0x09, 1, 2, 3, 4, 5, 6, 7, 8], containing: "not a valid")
    }

    func testUnknownFieldsInPayloadAreIgnored() throws {
        var payload = add(MemoryItem(id: "bi-unknown-fields", userID: "u"))
        payload += [0xf8, 0x07, 0x01]  // field 127, varint
        XCTAssertNil(try rawCall(.addMemoryItem, payload))
        XCTAssertEqual(try Self.bystander.getMemoryItem("bi-unknown-fields").userID, "u")
    }

    func testEmptyPayloadOfAddIsAValidationError() throws {
        try assertValidation(.addMemoryItem, [], containing: "user_id is required")
        try assertValidation(.addRawAgentData, [], containing: "agent_id is required")
        try assertValidation(.semanticSearch, [], containing: "user_id is required")
    }

    /// MemoryItem { field: bytes } inside AddMemoryItemRequest.item, written by hand (Swift strings are UTF-8).
    private func itemPayload(_ fields: [(UInt8, [UInt8])]) -> [UInt8] {
        var item: [UInt8] = []
        for (f, v) in fields { item += [f << 3 | 2] + varint(v.count) + v }
        return [0x0a] + varint(item.count) + item
    }

    private func varint(_ n: Int) -> [UInt8] {
        var n = n, out: [UInt8] = []
        repeat {
            out.append(UInt8(n & 0x7f) | (n > 0x7f ? 0x80 : 0))
            n >>= 7
        } while n > 0
        return out
    }

    func testInvalidUTF8InIDUserAndTextIsAValidationError() throws {
        let bad: [UInt8] = [0x61, 0xc3, 0x28]  // "a" + a broken two-byte sequence
        try assertValidation(.addMemoryItem, itemPayload([(1, bad), (2, Array("u".utf8))]), containing: "UTF-8")
        try assertValidation(
            .addMemoryItem, itemPayload([(1, Array("bi-utf8-user".utf8)), (2, bad)]), containing: "UTF-8")
        try assertValidation(
            .addMemoryItem, itemPayload([(1, Array("bi-utf8-text".utf8)), (2, Array("u".utf8)), (7, bad)]),
            containing: "UTF-8")
        try assertValidation(.getMemoryItem, [0x0a, 3] + bad, containing: "UTF-8")
        assertNotStored("bi-utf8-user")
        assertNotStored("bi-utf8-text")
    }

    func testNULInStringsIsRefusedNotTruncated() throws {
        // protobuf-c strings are C strings: without the check "bi-nul\0tail" was stored as "bi-nul" and a text
        // cut at its first NUL. (Written by hand: the Swift client's own encoder cuts them the same way.)
        let u = Array("u".utf8)
        try assertValidation(
            .addMemoryItem, itemPayload([(1, Array("bi-nul".utf8) + [0] + Array("tail".utf8)), (2, u)]),
            containing: "item.id contains a NUL")
        try assertValidation(
            .addMemoryItem,
            itemPayload([(1, Array("bi-nul-text".utf8)), (2, u), (7, Array("before".utf8) + [0, 0x61])]),
            containing: "item.text_content contains a NUL")
        try assertValidation(
            .getMemoryItem, [0x0a, 13] + Array("bi-nul-text".utf8) + [0, 0x78], containing: "id contains a NUL")
        for id in ["bi-nul", "bi-nul-text"] { assertNotStored(id) }
        // In the frame's method: a protocol violation (it would otherwise be read as ".../Ping").
        let c = try daemon.connection()
        let method = Array(MemoryMethod.ping.path.utf8) + [0] + Array("junk".utf8)
        let req: [UInt8] = [0x08, 0x01, 0x12, UInt8(method.count)] + method
        try c.writeRaw(frame([0x0a, UInt8(req.count)] + req))
        assertGoAway(c, .invalidArgument, "not a valid")
    }

    func testBadIDsAreValidationErrors() throws {
        for id in ["a/b", "..", ".", "../etc/passwd", "__x__", "a b", "ü", String(repeating: "a", count: 257)] {
            let e = try rawCall(.addMemoryItem, add(MemoryItem(id: id, userID: "u")))
            XCTAssertEqual(e?.type, .validation, "id \(id.prefix(20)): \(String(describing: e))")
            XCTAssertEqual(
                try rawCall(.getMemoryItem, PayloadCodec.encodeRequest(.getMemoryItem(id: id)))?.type, .validation)
            XCTAssertEqual(
                try rawCall(.deleteMemoryItem, PayloadCodec.encodeRequest(.deleteMemoryItem(id: id)))?.type, .validation
            )
        }
        XCTAssertNil(
            try rawCall(.addMemoryItem, add(MemoryItem(id: String(repeating: "a", count: 256), userID: "u"))),
            "256 bytes is allowed")
    }

    func testControlCharactersAndLongKeysAreValidationErrors() throws {
        try assertValidation(
            .addMemoryItem, add(MemoryItem(id: "bi-ctl", userID: "u\n1")), containing: "control characters")
        try assertValidation(
            .addMemoryItem, add(MemoryItem(id: "bi-long-user", userID: String(repeating: "u", count: 257))),
            containing: "limit is 256")
        assertNotStored("bi-ctl")
        assertNotStored("bi-long-user")
    }

    func testNonFiniteAndWrongSizeEmbeddingsAreValidationErrors() throws {
        let ok: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]
        var cases: [(String, [Float], String)] = [
            ("nan", ok, "finite"), ("inf", ok, "finite"), ("ninf", ok, "finite"),
            ("short", Array(ok.prefix(7)), "expected 8"), ("long", ok + [9], "expected 8"),
        ]
        cases[0].1[3] = .nan
        cases[1].1[0] = .infinity
        cases[2].1[7] = -.infinity
        for (name, e, text) in cases {
            try assertValidation(
                .addMemoryItem, add(MemoryItem(id: "bi-emb-\(name)", userID: "u", embedding: e)), containing: text)
            assertNotStored("bi-emb-\(name)")
            try assertValidation(
                .semanticSearch,
                PayloadCodec.encodeRequest(.semanticSearch(SearchRequest(userID: "u", queryEmbedding: e))),
                containing: text)
        }
        try assertValidation(
            .semanticSearch,
            PayloadCodec.encodeRequest(.semanticSearch(SearchRequest(userID: "u", queryEmbedding: [], topK: 1))),
            containing: "empty")
        try assertValidation(
            .semanticSearch,
            PayloadCodec.encodeRequest(.semanticSearch(SearchRequest(userID: "u", queryEmbedding: ok, minScore: .nan))),
            containing: "finite")
        try assertValidation(
            .semanticSearch,
            PayloadCodec.encodeRequest(.semanticSearch(SearchRequest(userID: "u", queryEmbedding: ok, topK: 1001))),
            containing: "top_k")
        var bad = SearchRequest(userID: "u", queryEmbedding: ok)
        bad.measure = 7
        try assertValidation(.semanticSearch, PayloadCodec.encodeRequest(.semanticSearch(bad)), containing: "measure 7")
    }

    func testOversizedTextAndMetadataAreValidationErrors() throws {
        try assertValidation(
            .addMemoryItem,
            add(MemoryItem(id: "bi-big-text", userID: "u", textContent: String(repeating: "t", count: 512 * 1024 + 1))),
            containing: "limit is 524288")
        var meta: [String: JSONValue] = [:]
        for i in 0..<40 { meta["k\(i)"] = .string(String(repeating: "m", count: 30_000)) }  // ~1.2 MB of metadata
        try assertValidation(
            .addMemoryItem, add(MemoryItem(id: "bi-big-meta", userID: "u", metadata: meta)),
            containing: "limit is 1048576")
        try assertValidation(
            .addMemoryItem,
            add(MemoryItem(id: "bi-nan-meta", userID: "u", metadata: ["x": .array([.number(.infinity)])])),
            containing: "finite")
        for id in ["bi-big-text", "bi-big-meta", "bi-nan-meta"] { assertNotStored(id) }
    }

    func testDeeplyNestedMetadataIsRefusedPast20Levels() throws {
        func nested(_ depth: Int) -> [String: JSONValue] {
            var v = JSONValue.string("leaf")
            for _ in 0..<(depth - 1) { v = .object(["n": v]) }
            return ["n": v]
        }
        // Depth counts the leaf: {"n": "leaf"} is 2 levels.
        XCTAssertNil(try rawCall(.addMemoryItem, add(MemoryItem(id: "bi-nest-20", userID: "u", metadata: nested(19)))))
        try assertValidation(
            .addMemoryItem, add(MemoryItem(id: "bi-nest-21", userID: "u", metadata: nested(20))),
            containing: "nested 21 levels")
        try assertValidation(
            .addMemoryItem, add(MemoryItem(id: "bi-nest-60", userID: "u", metadata: nested(60))), containing: "nested")
        // Each metadata level is three protobuf levels (Struct, map entry, Value): past 200 the frame itself
        // is refused before protobuf-c recurses into it.
        let c = try daemon.connection()
        try c.writeRaw(
            request(
                id: 1, .addMemoryItem, payload: add(MemoryItem(id: "bi-nest-150", userID: "u", metadata: nested(150)))))
        assertGoAway(c, .invalidArgument, "deeper than 200")
        for id in ["bi-nest-21", "bi-nest-60", "bi-nest-150"] { assertNotStored(id) }
        XCTAssertEqual(try Self.bystander.getMemoryItem("bi-nest-20").metadata["n"]?.depth, 19)
    }

    func testInvalidTimestampsAreValidationErrors() throws {
        try assertValidation(
            .addMemoryItem,
            add(MemoryItem(id: "bi-ts-nanos", userID: "u", timestamp: Timestamp(seconds: 1, nanos: -5))),
            containing: "timestamp")
        try assertValidation(
            .addMemoryItem,
            add(MemoryItem(id: "bi-ts-year", userID: "u", timestamp: Timestamp(seconds: 300_000_000_000))),
            containing: "timestamp")
        try assertValidation(
            .addRawAgentData,
            PayloadCodec.encodeRequest(
                .addRawAgentData(
                    AgentData(
                        id: "bi-ts-agent", agentID: "a", dataType: "t",
                        expiration: Timestamp(seconds: 0, nanos: 1_000_000_000)))),
            containing: "expiration")
        assertNotStored("bi-ts-nanos")
        assertNotStored("bi-ts-year")
    }

    func testBadPageTokensAndLimitsAreValidationErrors() throws {
        let forged = "v1." + Base64URL.encode(Array("9223372036854775807:mem_x".utf8))  // an instant past year 9999
        for token in ["nope", "v1.", "v1.!!!!", forged] {
            try assertValidation(
                .getConversationHistory,
                PayloadCodec.encodeRequest(.getConversationHistory(HistoryRequest(userID: "u", pageToken: token))),
                containing: "page_token")
            try assertValidation(
                .listAgentData,
                PayloadCodec.encodeRequest(.listAgentData(ListAgentDataRequest(agentID: "a", pageToken: token))),
                containing: "page_token")
        }
        try assertValidation(
            .getConversationHistory,
            PayloadCodec.encodeRequest(.getConversationHistory(HistoryRequest(userID: "u", limit: 1001))),
            containing: "limit 1001")
        try assertValidation(
            .getConversationHistory,
            PayloadCodec.encodeRequest(
                .getConversationHistory(HistoryRequest(userID: "u", filters: ["bogus": .string("x")]))),
            containing: "not a field")
    }

    func testTenThousandItemsAreAcceptedAndTenThousandAndOneRefusedWhole() throws {
        let conn = try daemon.connection()
        let many = (0..<10_000).map { MemoryItem(id: "bi-10k-\($0)", userID: "batch", textContent: "b\($0)") }
        guard case .addMemoryItems(let results) = try conn.call(.addMemoryItems(items: many, upsert: false)) else {
            return XCTFail()
        }
        XCTAssertEqual(results.count, 10_000)
        XCTAssertTrue(results.allSatisfy { $0.error == nil })
        let tooMany = (0..<10_001).map { MemoryItem(id: "bi-10k1-\($0)", userID: "batch") }
        let e = try rawCall(.addMemoryItems, PayloadCodec.encodeRequest(.addMemoryItems(items: tooMany, upsert: false)))
        XCTAssertEqual(e?.type, .validation)
        XCTAssertTrue(e?.message.contains("10001") ?? false, e?.message ?? "")
        for i in [0, 5000, 10_000] { assertNotStored("bi-10k1-\(i)") }
        XCTAssertEqual(try Self.bystander.getMemoryItem("bi-10k-9999").textContent, "b9999")
    }

    func testBatchWithBadItemsStoresOnlyTheGoodOnes() throws {
        let items = [
            MemoryItem(id: "bi-mix-ok", userID: "u"), MemoryItem(id: "bi-mix/bad", userID: "u"),
            MemoryItem(id: "bi-mix-nouser"), MemoryItem(id: "bi-mix-ok", userID: "u"),
        ]
        let r = try Self.bystander.addMemoryItems(items)
        XCTAssertNil(r[0].error)
        XCTAssertEqual(r[1].error?.type, .validation)
        XCTAssertEqual(r[2].error?.type, .validation)
        XCTAssertEqual(r[3].error?.type, .duplicate)
        assertNotStored("bi-mix-nouser")
    }
}
