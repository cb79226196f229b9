import ArgumentParser
import Logging
import MemoryBackends
import MemoryDomain
import MemoryServer
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// `memoryd`: the daemon. Configuration comes from the TOML file, then `MEMORYD_*` variables, then these
/// flags (SPEC §6). The backends' own flags (`--project-id`, ...) come from their registrations. This is the
/// default subcommand (`MemorydCommand` picks it unless the first argument is another one).
struct Memoryd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memoryd",
        abstract: "Shared, durable memory for the AI agents of this host, served over a Unix socket.",
        discussion: """
            Configuration: defaults < TOML file (--config) < MEMORYD_* environment variables < flags.
            Example: memoryd --socket /tmp/memoryd.sock --data-dir /tmp/memoryd

            Other commands: memoryd migrate --from v1|sqlite|firestore … (see memoryd migrate --help).

            \(BackendFlags.help)
            """,
        version: Server.version)

    @Option(help: "TOML configuration file (optional when the default is missing).")
    var config: String = DaemonConfig.defaultPath
    @Option(help: "Unix socket path (socket_path).") var socket: String?
    @Option(help: "\(BackendCatalog.all.map(\.name).joined(separator: " or ")) (backend).") var backend: String?
    @Option(help: "Directory of the sqlite databases (data_dir).") var dataDir: String?
    @Option(help: "Isolates collections and tables (namespace).") var namespace: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (log_level).") var logLevel: String?
    @Option(help: "Serve GET /metrics on 127.0.0.1:PORT or unix:/path (metrics_listen; default off).")
    var metricsListen: String?
    @Flag(help: "Check the configuration, print it and exit.") var checkConfig = false
    /// The backends' flags, parsed by `BackendFlags` (ArgumentParser declares options statically).
    @Argument(parsing: .allUnrecognized, help: .hidden) var backendArguments: [String] = []

    func validate() throws {
        _ = try BackendFlags.parse(backendArguments)
    }

    func flags() throws -> [String: String] {
        var f = try BackendFlags.parse(backendArguments)
        f["socket_path"] = socket
        f["backend"] = backend
        f["data_dir"] = dataDir
        f["namespace"] = namespace
        f["log_level"] = logLevel
        f["metrics_listen"] = metricsListen
        return f
    }

    func loadConfig() throws -> DaemonConfig {
        try Self.loadConfig(path: config, flags: try flags())
    }

    /// The configuration from the file at `path` (optional when it is the default), the environment and `flags`.
    static func loadConfig(path: String, flags: [String: String]) throws -> DaemonConfig {
        let env = Environment.current()
        var text: String?
        if let data = TextFile.read(path) {
            text = data
        } else if path != DaemonConfig.defaultPath {
            throw ConfigError(key: "--config", "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        return try DaemonConfig.load(file: text, filePath: path, env: env, flags: flags, backends: BackendCatalog.all)
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let cfg: DaemonConfig
        do {
            cfg = try loadConfig()
        } catch {
            fail("memoryd: invalid configuration: \(error)")
        }
        // --check-config prints a report; the backends' notes about opening are not part of it.
        let level = Logger.Level(rawValue: cfg.logLevel)!
        StderrLogHandler.sharedLevel.store(
            checkConfig ? max(level.rank, Logger.Level.warning.rank) : level.rank, ordering: .relaxed)
        LoggingSystem.bootstrap { StderrLogHandler(label: $0) }
        let logger = Logger(label: "memoryd")
        if checkConfig { Glibc.exit(Preflight.report(cfg, configPath: config, logger: logger)) }
        if let error = Preflight.startErrors(cfg).first {
            fail("memoryd: invalid configuration: \(error.key): \(error.message)")
        }
        if cfg.configFile == nil {
            logger.notice(
                "no configuration file; defaults, environment and flags apply", metadata: ["config": "\(config)"])
        }

        let store: StoreBackend
        do {
            store = try BackendCatalog.named(cfg.backend)!.open(cfg, logger)
        } catch {
            fail("memoryd: cannot open the \(cfg.backend) backend: \(error)")
        }
        Preflight.probe(store, logger: logger)
        let server = Server(config: cfg, backend: store, logger: logger, reloadConfig: { try loadConfig() })
        do {
            if case .workersStuck = try server.run() {
                // The drain ended with workers still inside backend calls (docs/operating.md): exit now, without
                // running exit handlers under their feet. 75 = EX_TEMPFAIL: not a clean stop.
                Glibc._exit(75)
            }
        } catch {
            logger.critical("memoryd failed", metadata: ["error": "\(error)"])
            store.shutdown()
            Glibc.exit(1)
        }
    }
}

/// The backends' `memoryd` flags (`--project-id ID` or `--project-id=ID`), from their registrations.
enum BackendFlags {
    static let all: [ConfigFlag] = BackendCatalog.all.flatMap(\.flags)

    /// Config keys set by `arguments`; a usage error (exit 64) for anything that is not a backend flag.
    static func parse(_ arguments: [String]) throws -> [String: String] {
        var out: [String: String] = [:]
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            let (name, inline) = arg.split(separator: "=", maxSplits: 1).map(String.init).pairOrSingle
            guard name.hasPrefix("--"), let flag = all.first(where: { "--" + $0.name == name }) else {
                throw ValidationError(
                    arg.hasPrefix("-") ? "Unknown option '\(name)'" : "Unexpected argument '\(arg)'")
            }
            if let inline {
                out[flag.key] = inline
            } else {
                guard i + 1 < arguments.count else {
                    throw ValidationError("Missing value for '\(name) <\(flag.valueName)>'")
                }
                i += 1
                out[flag.key] = arguments[i]
            }
            i += 1
        }
        return out
    }

    static var help: String {
        BackendCatalog.all.filter { !$0.flags.isEmpty }.map { b in
            "\(b.name) backend options:\n"
                + b.flags.map { f in "  --\(f.name) <\(f.valueName)>\n        \(f.help) (\(f.key))" }
                .joined(separator: "\n")
        }.joined(separator: "\n\n")
    }
}

extension Array where Element == String {
    fileprivate var pairOrSingle: (String, String?) { count == 2 ? (self[0], self[1]) : (self[0], nil) }
}

func fail(_ message: String) -> Never {
    writeStderr(message)
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
