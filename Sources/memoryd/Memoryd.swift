import ArgumentParser
import Logging
import MemoryDomain
import MemorySQLite
import MemoryServer
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// `memoryd`: the daemon. Configuration comes from the TOML file, then `MEMORYD_*` variables, then these
/// flags (SPEC §6).
@main
struct Memoryd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memoryd",
        abstract: "Shared, durable memory for the AI agents of this host, served over a Unix socket.",
        discussion: """
            Configuration: defaults < TOML file (--config) < MEMORYD_* environment variables < flags.
            Example: memoryd --socket /tmp/memoryd.sock --data-dir /tmp/memoryd
            """,
        version: Server.version)

    @Option(help: "TOML configuration file (optional when the default is missing).")
    var config: String = DaemonConfig.defaultPath
    @Option(help: "Unix socket path (socket_path).") var socket: String?
    @Option(help: "sqlite or firestore (backend).") var backend: String?
    @Option(help: "Directory of the sqlite databases (data_dir).") var dataDir: String?
    @Option(help: "Isolates collections and tables (namespace).") var namespace: String?
    @Option(help: "Firestore project (firestore.project_id).") var projectId: String?
    @Option(help: "Service-account key file (firestore.credentials_path).") var credentialsPath: String?
    @Option(help: "Firestore emulator host:port (firestore.emulator_host).") var emulatorHost: String?
    @Option(help: "Backend connections and workers (firestore.connection_pool_size).") var connectionPoolSize: Int?
    @Option(help: "Writes per Firestore request (firestore.batch_size).") var batchSize: Int?
    @Option(help: "trace, debug, info, notice, warning, error or critical (log_level).") var logLevel: String?
    @Flag(help: "Check the configuration, print it and exit.") var checkConfig = false

    func flags() -> [String: String] {
        var f: [String: String] = [:]
        f["socket_path"] = socket
        f["backend"] = backend
        f["data_dir"] = dataDir
        f["namespace"] = namespace
        f["firestore.project_id"] = projectId
        f["firestore.credentials_path"] = credentialsPath
        f["firestore.emulator_host"] = emulatorHost
        f["firestore.connection_pool_size"] = connectionPoolSize.map(String.init)
        f["firestore.batch_size"] = batchSize.map(String.init)
        f["log_level"] = logLevel
        return f
    }

    func loadConfig() throws -> DaemonConfig {
        let env = Environment.current()
        var text: String?
        if let data = TextFile.read(config) {
            text = data
        } else if config != DaemonConfig.defaultPath {
            throw ConfigError(key: "--config", "cannot read \(config): \(String(cString: strerror(errno)))")
        }
        return try DaemonConfig.load(file: text, filePath: config, env: env, flags: flags())
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let cfg: DaemonConfig
        do {
            cfg = try loadConfig()
        } catch {
            fail("memoryd: invalid configuration: \(error)")
        }
        if checkConfig {
            print(
                "configuration is valid: backend=\(cfg.normalizedBackend) socket=\(cfg.socketPath) data_dir=\(cfg.dataDir) workers=\(cfg.workerCount)"
            )
            return
        }
        StderrLogHandler.sharedLevel.store(Logger.Level(rawValue: cfg.logLevel)!.rank, ordering: .relaxed)
        LoggingSystem.bootstrap { StderrLogHandler(label: $0) }
        let logger = Logger(label: "memoryd")

        let store: StoreBackend
        do {
            store = try makeBackend(cfg, logger: logger)
        } catch {
            fail("memoryd: cannot open the \(cfg.normalizedBackend) backend: \(error)")
        }
        let server = Server(config: cfg, backend: store, logger: logger, reloadConfig: { try loadConfig() })
        do {
            try server.run()
        } catch {
            logger.critical("memoryd failed", metadata: ["error": "\(error)"])
            store.shutdown()
            Glibc.exit(1)
        }
    }

    func makeBackend(_ cfg: DaemonConfig, logger: Logger) throws -> StoreBackend {
        switch cfg.normalizedBackend {
        case "firestore":
            return try makeFirestoreBackend(cfg, logger: logger)
        default:
            return try SQLiteBackend(
                dataDirectory: cfg.dataDir, namespace: cfg.namespace, limits: cfg.limits,
                batchSize: cfg.firestore.batchSize, logger: logger)
        }
    }
}

func fail(_ message: String) -> Never {
    var bytes = Array((message + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

enum Environment {
    static func current() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }
}
