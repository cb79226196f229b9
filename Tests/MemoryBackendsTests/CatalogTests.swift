import MemoryBackends
import MemoryDomain
import XCTest

/// The real backends' registrations: their keys, aliases and defaults as the SPEC and README give them.
final class CatalogTests: XCTestCase {
    func load(_ file: String?, env: [String: String] = [:]) throws -> DaemonConfig {
        try DaemonConfig.load(file: file, env: env, backends: BackendCatalog.all)
    }

    func testFirestoreKeysStandardVariablesAndAlias() throws {
        let c = try load(
            "backend = \"firestore_v2\"\n[firestore]\nbatch_size = 100\n[circuit_breaker]\nrecovery_timeout_s = 2.5",
            env: ["GOOGLE_CLOUD_PROJECT": "p", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"])
        XCTAssertEqual(c.backend, "firestore")
        XCTAssertEqual(c.string("firestore.project_id"), "p")
        XCTAssertEqual(c.string("firestore.emulator_host"), "127.0.0.1:1")
        XCTAssertEqual(c.integer("firestore.batch_size"), 100)
        XCTAssertEqual(c.number("circuit_breaker.recovery_timeout_s"), 2.5)
        XCTAssertEqual(c.workerCount, 10, "Firestore: one worker per pooled connection (connection_pool_size)")
    }

    func testSQLiteHasItsOwnBatchSizeAndCoresAsWorkers() throws {
        let c = try load("[firestore]\nbatch_size = 7\n[sqlite]\nbatch_size = 50")
        XCTAssertEqual(c.backend, "sqlite")
        XCTAssertEqual(c.integer("sqlite.batch_size"), 50, "sqlite no longer reads firestore.batch_size")
        XCTAssertEqual(c.workerCount, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    func testEachBackendChecksItsOwnKeys() {
        func key(_ file: String?, _ env: [String: String] = [:]) -> String? {
            do {
                _ = try load(file, env: env)
                return nil
            } catch { return (error as? ConfigError)?.key }
        }
        XCTAssertEqual(key(nil, ["MEMORYD_BACKEND": "firestore"]), "firestore.project_id")
        XCTAssertEqual(key("[firestore]\nconnection_pool_size = 0"), "firestore.connection_pool_size")
        XCTAssertEqual(key("data_dir = \"\""), "data_dir")
        XCTAssertEqual(key(nil, ["MEMORYD_FIRESTORE_BATCHSIZE": "1"]), "MEMORYD_FIRESTORE_BATCHSIZE")
    }
}
