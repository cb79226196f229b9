import MemoryDomain
import MemoryUtilities
import XCTest

final class PageCursorAndValidationTests: XCTestCase {
    func testPageTokensRoundTripAndRejectForgeries() {
        let c = PageCursor(timestamp: Timestamp(microseconds: 1_700_000_000_123_456), id: "mem_abc")
        XCTAssertEqual(PageCursor(token: c.token), c)
        XCTAssertNil(PageCursor(token: "v1.bm9wZQ"))
        XCTAssertNil(PageCursor(token: "garbage"))
        XCTAssertNil(PageCursor(token: "v1." + Base64URL.encode(Array("5:../x".utf8))))
    }

    func testIDValidation() {
        for good in ["mem_1", "a.b:c-d_e", String(repeating: "x", count: 256)] {
            XCTAssertTrue(Validation.isValidID(good), good)
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "__x__", String(repeating: "x", count: 257)] {
            XCTAssertFalse(Validation.isValidID(bad), bad)
        }
    }

    /// Found by fuzz-requests.
    func testForgedPageTokenOutsideTheTimestampRangeIsRefused() {
        XCTAssertNil(PageCursor(token: "v1." + Base64URL.encode(Array("9223372036854775807:mem_x".utf8))))
        let ok = PageCursor(timestamp: Timestamp(seconds: 1_700_000_000), id: "mem_x")
        XCTAssertEqual(PageCursor(token: ok.token), ok)
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
        c = try DaemonConfig.load(
            file: toml, env: ["MEMORYD_FIRESTORE_BATCH_SIZE": "200", "MEMORYD_ALLOWED_UIDS": "0,1000,65534"],
            flags: ["socket_path": "/tmp/b.sock"])
        XCTAssertEqual(c.firestore.batchSize, 200)
        XCTAssertEqual(c.allowedUIDs, [0, 1000, 65534])
        XCTAssertEqual(c.socketPath, "/tmp/b.sock")
        c = try DaemonConfig.load(
            file: nil,
            env: [
                "GOOGLE_CLOUD_PROJECT": "p", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1",
                "MEMORYD_BACKEND": "firestore_v2",
            ])
        XCTAssertEqual(c.normalizedBackend, "firestore")
        XCTAssertEqual(c.firestore.emulatorHost, "127.0.0.1:1")
        XCTAssertEqual(c.socketMode, 0o660)
    }

    func testBadValuesNameTheKey() {
        func key(_ file: String?, _ env: [String: String] = [:]) -> String? {
            do {
                _ = try DaemonConfig.load(file: file, env: env)
                return nil
            } catch { return error.key }
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
