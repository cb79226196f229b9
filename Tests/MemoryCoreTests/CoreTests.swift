import MemoryCore
import XCTest

final class FrameReassemblerTests: XCTestCase {
    private func frames(_ chunks: [[UInt8]], max: Int = 100) throws -> [[UInt8]] {
        var r = FrameReassembler(maxFrameBytes: max)
        var out: [[UInt8]] = []
        for c in chunks {
            try c.withUnsafeBytes { _ = try r.feed($0) { out.append(Array($0)); return true } }
        }
        return out
    }

    func testWholeSplitAndByteByByteFramesAreReassembled() throws {
        let stream: [UInt8] = [0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 1, 9]
        XCTAssertEqual(try frames([stream]), [[1, 2, 3], [9]])
        XCTAssertEqual(try frames(stream.map { [$0] }), [[1, 2, 3], [9]])
        XCTAssertEqual(try frames([Array(stream[0..<2]), Array(stream[2..<6]), Array(stream[6...])]), [[1, 2, 3], [9]])
    }

    func testBadLengthsAreRefusedBeforeAllocation() {
        XCTAssertThrowsError(try frames([[0, 0, 0, 0]])) { XCTAssertEqual($0 as? FrameReassembler.Failure, .zeroLength) }
        XCTAssertThrowsError(try frames([[0, 0, 0, 101]])) { XCTAssertEqual($0 as? FrameReassembler.Failure, .tooLarge(101)) }
        XCTAssertThrowsError(try frames([[0xff], [0xff, 0xff], [0xff]])) { XCTAssertEqual($0 as? FrameReassembler.Failure, .tooLarge(UInt32.max)) }
    }

    func testStoppingAfterAFrameReportsTheBytesConsumed() throws {
        var r = FrameReassembler(maxFrameBytes: 100)
        let stream: [UInt8] = [0, 0, 0, 1, 7, 0, 0, 0, 1, 8]
        let consumed = try stream.withUnsafeBytes { try r.feed($0) { _ in false } }
        XCTAssertEqual(consumed, 5)
        XCTAssertFalse(r.isMidFrame)
    }
}

final class CodecTests: XCTestCase {
    func testJSONRoundTripAndErrors() throws {
        let text = #"{"a":[1,2.5,"x\n\u00e9",true,null],"b":{"c":-3e2},"emoji":"\ud83d\ude00"}"#
        let v = try JSONValue.parse(text)
        XCTAssertEqual(v["a"], .array([.number(1), .number(2.5), .string("x\né"), .bool(true), .null]))
        XCTAssertEqual(v["b"]?["c"], .number(-300))
        XCTAssertEqual(v["emoji"], .string("😀"))
        XCTAssertEqual(try JSONValue.parse(v.serialized()), v)
        XCTAssertThrowsError(try JSONValue.parse("{\"a\":1,}"))
        XCTAssertThrowsError(try JSONValue.parse("[1] x"))
        XCTAssertThrowsError(try JSONValue.parse(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)))
    }

    func testTimestampRFC3339() throws {
        let t = try XCTUnwrap(Timestamp(rfc3339: "2026-11-26T09:38:53.152626Z"))
        XCTAssertEqual(t.rfc3339, "2026-11-26T09:38:53.152626Z")
        XCTAssertEqual(Timestamp(rfc3339: "1970-01-01T01:00:00+01:00")?.seconds, 0)
        XCTAssertEqual(Timestamp(rfc3339: "2000-02-29T00:00:00Z")?.seconds, 951_782_400)
        XCTAssertNil(Timestamp(rfc3339: "2026-13-01T00:00:00Z"))
        XCTAssertNil(Timestamp(rfc3339: "yesterday"))
        XCTAssertEqual(Timestamp(microseconds: -1).rfc3339, "1969-12-31T23:59:59.999999Z")
    }

    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256.hexDigest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hexDigest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hexDigest(String(repeating: "a", count: 1000)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    func testPageTokensRoundTripAndRejectForgeries() {
        let c = PageCursor(timestamp: Timestamp(microseconds: 1_700_000_000_123_456), id: "mem_abc")
        XCTAssertEqual(PageCursor(token: c.token), c)
        XCTAssertNil(PageCursor(token: "v1.bm9wZQ"))
        XCTAssertNil(PageCursor(token: "garbage"))
        XCTAssertNil(PageCursor(token: "v1." + Base64URL.encode(Array("5:../x".utf8))))
    }

    func testIDValidation() {
        for good in ["mem_1", "a.b:c-d_e", String(repeating: "x", count: 256)] { XCTAssertTrue(Validation.isValidID(good), good) }
        for bad in ["", ".", "..", "a/b", "a b", "é", "__x__", String(repeating: "x", count: 257)] {
            XCTAssertFalse(Validation.isValidID(bad), bad)
        }
    }
}

final class ConfigTests: XCTestCase {
    func testLayersFileThenEnvironmentThenFlags() throws {
        let toml = """
            # memoryd
            socket_path = "/tmp/a.sock"   # comment
            workers = 3
            allowed_uids = [0, 1000]
            [firestore]
            batch_size = 100
            project_id = 'demo'
            """
        var c = try DaemonConfig.load(file: toml, env: [:])
        XCTAssertEqual(c.socketPath, "/tmp/a.sock")
        XCTAssertEqual(c.workerCount, 3)
        XCTAssertEqual(c.allowedUIDs, [0, 1000])
        XCTAssertEqual(c.firestore.batchSize, 100)
        c = try DaemonConfig.load(file: toml, env: ["MEMORYD_FIRESTORE_BATCH_SIZE": "200", "MEMORYD_ALLOWED_UIDS": "0,1000,65534"],
                                  flags: ["socket_path": "/tmp/b.sock"])
        XCTAssertEqual(c.firestore.batchSize, 200)
        XCTAssertEqual(c.allowedUIDs, [0, 1000, 65534])
        XCTAssertEqual(c.socketPath, "/tmp/b.sock")
        c = try DaemonConfig.load(file: nil, env: ["GOOGLE_CLOUD_PROJECT": "p", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1", "MEMORYD_BACKEND": "firestore_v2"])
        XCTAssertEqual(c.normalizedBackend, "firestore")
        XCTAssertEqual(c.firestore.emulatorHost, "127.0.0.1:1")
        XCTAssertEqual(c.socketMode, 0o660)
    }

    func testBadValuesNameTheKey() {
        func key(_ file: String?, _ env: [String: String] = [:]) -> String? {
            do { _ = try DaemonConfig.load(file: file, env: env); return nil } catch { return error.key }
        }
        XCTAssertEqual(key("workers = \"many\""), "workers")
        XCTAssertEqual(key("nope = 1"), "nope")
        XCTAssertEqual(key(nil, ["MEMORYD_BACKEND": "mysql"]), "backend")
        XCTAssertEqual(key(nil, ["MEMORYD_BACKEND": "firestore"]), "firestore.project_id")
        XCTAssertEqual(key(nil, ["MEMORYD_LOG_LEVEL": "loud"]), "log_level")
        XCTAssertEqual(key(nil, ["MEMORYD_SOCKET_MODE": "999"]), "socket_mode")
        XCTAssertEqual(key("[firestore]\nconnection_pool_size = 0"), "firestore.connection_pool_size")
        XCTAssertNotNil(key("socket_path = \"unterminated"))
    }
}

/// Found by fuzz-requests: formatting a timestamp straight off the wire must not trap.
final class TimestampFormattingTests: XCTestCase {
    func testOutOfRangeNanosAreCarriedNotTrapped() {
        XCTAssertEqual(Timestamp(seconds: 1, nanos: -1000).rfc3339, "1970-01-01T00:00:00.999999Z")
        XCTAssertEqual(Timestamp(seconds: 0, nanos: 2_000_001_000).rfc3339, "1970-01-01T00:00:02.000001Z")
        _ = Timestamp(seconds: .max, nanos: .min).description
        _ = Timestamp(seconds: .min, nanos: .max).description
    }

    func testForgedPageTokenOutsideTheTimestampRangeIsRefused() {
        XCTAssertNil(PageCursor(token: "v1." + Base64URL.encode(Array("9223372036854775807:mem_x".utf8))))
        let ok = PageCursor(timestamp: Timestamp(seconds: 1_700_000_000), id: "mem_x")
        XCTAssertEqual(PageCursor(token: ok.token), ok)
    }
}
