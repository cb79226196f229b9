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

/// The loader against a made-up backend, so these tests show the registry's rules, not one backend's keys.
final class ConfigTests: XCTestCase {
    final class NoBackend: StoreBackend, @unchecked Sendable {
        let name = "toy"
        func makeConnection() throws(MemoryError) -> StoreConnection { throw .storage("toy") }
        func statistics() -> [String: JSONValue] { [:] }
        func shutdown() {}
    }

    static let toy = BackendRegistration(
        name: "toy", aliases: ["toy_v2"], summary: "a test backend",
        keys: [
            ConfigKey("toy.size", .integer(1...100), default: .integer(7), help: "size"),
            ConfigKey("toy.name", .string, default: .string(""), help: "name"),
            ConfigKey("toy.ratio", .number(0...1), default: .number(0.5), help: "ratio"),
        ],
        standardEnvironment: [("TOY_NAME", "toy.name")],
        defaultWorkers: { c in c.integer("toy.size") },
        validate: { c throws(ConfigError) in
            if c.string("toy.name") == "bad" { throw ConfigError(key: "toy.name", "is bad") }
        },
        open: { _, _ in NoBackend() })
    static let other = BackendRegistration(
        name: "other", summary: "another", defaultWorkers: { _ in 2 }, open: { _, _ in NoBackend() })

    func load(_ file: String?, env: [String: String] = [:], flags: [String: String] = [:]) throws(ConfigError)
        -> DaemonConfig
    {
        try DaemonConfig.load(
            file: file, filePath: "/etc/x.toml", env: env, flags: flags, backends: [Self.other, Self.toy])
    }

    func testLayersFileThenEnvironmentThenFlags() throws {
        let toml = """
            # memoryd
            backend = "toy"
            socket_path = "/tmp/a.sock"   # comment
            allowed_uids = [0, 1000]
            [toy]
            size = 9
            name = 'from-file'
            """
        var c = try load(toml, env: ["TOY_NAME": "from-standard-variable"])
        XCTAssertEqual(c.socketPath, "/tmp/a.sock")
        XCTAssertEqual(c.allowedUIDs, [0, 1000])
        XCTAssertEqual(c.integer("toy.size"), 9)
        XCTAssertEqual(c.workerCount, 9, "workers = 0: the backend's default")
        XCTAssertEqual(c.string("toy.name"), "from-file", "the file overrides the standard variable")
        XCTAssertEqual(c.number("toy.ratio"), 0.5)
        XCTAssertEqual(c.sources["toy.size"], "/etc/x.toml")
        XCTAssertEqual(c.sources["toy.ratio"], "default")
        c = try load(
            toml, env: ["MEMORYD_TOY_SIZE": "20", "MEMORYD_ALLOWED_UIDS": "0,1000,65534", "MEMORYD_WORKERS": "3"],
            flags: ["socket_path": "/tmp/b.sock"])
        XCTAssertEqual(c.integer("toy.size"), 20)
        XCTAssertEqual(c.sources["toy.size"], "environment MEMORYD_TOY_SIZE")
        XCTAssertEqual(c.workerCount, 3)
        XCTAssertEqual(c.allowedUIDs, [0, 1000, 65534])
        XCTAssertEqual(c.socketPath, "/tmp/b.sock")
        c = try load(nil, env: ["MEMORYD_BACKEND": "toy_v2", "MEMORYD_SOCKET": "/tmp/c.sock"])
        XCTAssertEqual(c.backend, "toy", "an alias is replaced by the registered name")
        XCTAssertEqual(c.socketPath, "/tmp/c.sock", "MEMORYD_SOCKET is socket_path's variable, as for memoryctl")
        XCTAssertEqual(c.socketMode, 0o660)
        c = try load(nil)
        XCTAssertEqual(c.backend, "other")
        XCTAssertEqual(c.workerCount, 2)
    }

    func testBadValuesNameTheKey() {
        func key(_ file: String?, _ env: [String: String] = [:]) -> String? {
            do {
                _ = try load(file, env: env)
                return nil
            } catch { return error.key }
        }
        XCTAssertEqual(key("workers = \"many\""), "workers")
        XCTAssertEqual(key("nope = 1"), "nope")
        XCTAssertEqual(key(nil, ["MEMORYD_BACKEND": "mysql"]), "backend")
        XCTAssertEqual(key(nil, ["MEMORYD_BACKEND": "toy", "TOY_NAME": "bad"]), "toy.name", "the backend's validate")
        XCTAssertEqual(key(nil, ["MEMORYD_LOG_LEVEL": "loud"]), "log_level")
        XCTAssertEqual(key(nil, ["MEMORYD_SOCKET_MODE": "999"]), "socket_mode")
        XCTAssertEqual(key("[toy]\nsize = 0"), "toy.size")
        XCTAssertEqual(key("[toy]\nratio = \"half\""), "toy.ratio")
        XCTAssertNotNil(key("socket_path = \"unterminated"))
        // A request of max_frame_bytes must fit in an empty queue.
        XCTAssertEqual(key("max_frame_bytes = 4194304\nqueue_max_bytes = 1048576"), "queue_max_bytes")
    }

    func testQueueMaxBytesDefaultsTo64MiB() throws {
        XCTAssertEqual(try load(nil).queueMaxBytes, 64 << 20)
        XCTAssertEqual(try load(nil, env: ["MEMORYD_QUEUE_MAX_BYTES": "8388608"]).queueMaxBytes, 8 << 20)
    }

    /// Every key has a printable value (check-config, SIGHUP's report), and the effective TOML loads back to
    /// the same configuration.
    func testEveryKeyHasAnEffectiveValueAndTheEffectiveTOMLLoadsBack() throws {
        var c = try load("log_level = \"debug\"\n[cache]\nttl_ms = 5\n", env: ["MEMORYD_ALLOWED_UIDS": "0,7"])
        for key in c.allKeys { XCTAssertNotNil(c.tomlValue(key), key) }
        let toml = c.effectiveTOML(backendKeys: c.backendSettings.keys.sorted())
        var back = try load(toml)
        c.sources = [:]
        back.sources = [:]
        c.configFile = nil
        back.configFile = nil
        XCTAssertEqual(back, c, toml)
        XCTAssertEqual(c.changedKeys(from: try load(nil)), ["allowed_uids", "log_level", "cache.ttl_ms"])
    }

    /// A typo in a unit file's Environment= must not fall back to a default without a word.
    func testUnknownMemorydVariablesAreRefusedNamingThem() {
        XCTAssertThrowsError(try load(nil, env: ["MEMORYD_WORKER": "4"])) { error in
            XCTAssertEqual((error as? ConfigError)?.key, "MEMORYD_WORKER")
        }
        XCTAssertThrowsError(try load(nil, env: ["MEMORYD_SOCKET": "/a", "MEMORYD_SOCKET_PATH": "/b"])) { error in
            XCTAssertEqual((error as? ConfigError)?.key, "MEMORYD_SOCKET_PATH")
        }
        // The clients' and tools' own variables are not the daemon's: they pass.
        XCTAssertNoThrow(try load(nil, env: ["MEMORYD_BIN": "/x", "MEMORYD_TEST_BACKENDS": "sqlite", "PATH": "/bin"]))
        // One name per setting: socket_path's variable is MEMORYD_SOCKET only, as for memoryctl and the clients.
        XCTAssertThrowsError(try load(nil, env: ["MEMORYD_SOCKET_PATH": "/tmp/d.sock"])) { error in
            XCTAssertTrue("\(error)".contains("MEMORYD_SOCKET"), "\(error)")
        }
        XCTAssertEqual(try load(nil, env: ["MEMORYD_SOCKET": "/tmp/d.sock"]).socketPath, "/tmp/d.sock")
    }
}
