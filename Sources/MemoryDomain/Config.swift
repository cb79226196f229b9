import MemoryUtilities

/// The daemon's configuration (SPEC §6): defaults, then the standard environment variables, then the TOML
/// file, then `MEMORYD_*` environment variables, then command-line flags.
///
/// The daemon's own settings are fields; each backend's settings (`firestore.*`, `sqlite.*`, …) are declared
/// by its ``BackendRegistration`` and read with ``string(_:)``, ``integer(_:)`` and ``number(_:)``.
public struct DaemonConfig: Sendable, Equatable {
    public var socketPath = "/run/memoryd/memoryd.sock"
    public var socketMode: UInt32 = 0o660
    public var socketGroup = ""
    /// The registered name of the chosen backend (an alias given in the file is replaced by the name).
    /// Empty until loaded: then the first registered backend, the default.
    public var backend = ""
    public var dataDir = "/var/lib/memoryd"
    public var namespace = "default"
    public var embeddingDimension = 768
    /// As configured; 0 = the backend's default (see ``workerCount``).
    public var workers = 0
    public var maxFrameBytes = 4 * 1024 * 1024
    public var maxConnections = 1024
    public var maxInFlightPerConnection = 256
    public var queueCapacity = 4096
    /// Payload bytes the calls waiting for a worker may hold together (the queue's other bound).
    public var queueMaxBytes = 64 * 1024 * 1024
    public var maxOutputBytes = 16 * 1024 * 1024
    public var defaultTimeoutMs: UInt64 = 30_000
    public var drainTimeoutMs: UInt64 = 10_000
    public var allowedUIDs: [UInt32] = []
    public var allowedGIDs: [UInt32] = []
    public var logLevel = "info"
    /// The read cache's budget (0 = no cache) and how long an entry may be served.
    public var cacheMaxBytes = 64 * 1024 * 1024
    public var cacheTTLMs = 30_000
    /// Record metrics (GetMetrics, the metrics endpoint). False turns every hook off, for measuring their cost.
    public var metrics = true
    /// Where to serve `GET /metrics` over HTTP: empty (off), `127.0.0.1:PORT` (loopback only) or `unix:/path`.
    public var metricsListen = ""
    /// Worker threads (= backend connections): `workers`, or the backend's default when that is 0. Set by
    /// ``load(file:filePath:env:flags:backends:)``.
    public var workerCount = 1
    /// The registered backends' keys, defaults included.
    public var backendSettings: [String: ConfigValue] = [:]
    /// Where each key's value came from: `default`, the file's path, `environment MEMORYD_X`, `flag --x`.
    public var sources: [String: String] = [:]
    /// The configuration file that was read (its path), nil when there was none.
    public var configFile: String?

    public init() {}

    public var limits: Limits { Limits(embeddingDimension: embeddingDimension) }

    public static let defaultPath = "/etc/memoryd/memoryd.toml"
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// The daemon's own keys (backends add theirs).
    public static let coreKeys: [String] = [
        "socket_path", "socket_mode", "socket_group", "backend", "data_dir", "namespace", "embedding_dimension",
        "workers", "max_frame_bytes", "max_connections", "max_in_flight_per_connection", "queue_capacity",
        "queue_max_bytes", "max_output_bytes", "default_timeout_ms", "drain_timeout_ms", "allowed_uids", "allowed_gids",
        "log_level", "cache.max_bytes", "cache.ttl_ms", "metrics", "metrics_listen",
    ]

    /// `MEMORYD_*` variables that belong to the clients, the tools and the tests, not to the daemon's
    /// configuration; the daemon ignores them instead of refusing them as unknown.
    public static let clientVariables: Set<String> = [
        "MEMORYD_BIN", "MEMORYD_TEST_BACKENDS", "MEMORYD_PID", "MEMORYD_CRASH_ROUNDS", "MEMORYD_FUZZ_WRITE_SEEDS",
    ]

    /// The environment variable of a key: `MEMORYD_` + the key in upper case with dots as underscores, except
    /// `socket_path`, whose variable is `MEMORYD_SOCKET` — the name memoryctl and the clients read too.
    public static func environmentVariable(for key: String) -> String {
        key == "socket_path" ? "MEMORYD_SOCKET" : "MEMORYD_" + key.uppercased().replacing(".", with: "_")
    }

    // MARK: - Backend settings

    /// A backend's string setting. Traps on a key no registration declared (a programming error).
    public func string(_ key: String) -> String {
        guard case .string(let s) = setting(key) else { preconditionFailure("\(key) is not a string key") }
        return s
    }

    /// A backend's integer setting.
    public func integer(_ key: String) -> Int {
        guard case .integer(let i) = setting(key) else { preconditionFailure("\(key) is not an integer key") }
        return i
    }

    /// A backend's numeric setting.
    public func number(_ key: String) -> Double {
        guard case .number(let d) = setting(key) else { preconditionFailure("\(key) is not a number key") }
        return d
    }

    private func setting(_ key: String) -> ConfigValue {
        guard let v = backendSettings[key] else { preconditionFailure("no registered backend declares \(key)") }
        return v
    }
}

public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var key: String
    public var message: String
    public var description: String { key.isEmpty ? message : "\(key): \(message)" }

    public init(key: String, _ message: String) {
        self.key = key
        self.message = message
    }
}

extension DaemonConfig {
    /// Builds the configuration from its layers.
    /// - Parameters:
    ///   - file: the TOML text, nil when there is none; `filePath` names it in messages.
    ///   - env: the process environment. Unknown `MEMORYD_*` variables are refused like unknown file keys.
    ///   - flags: command-line overrides keyed like the file (`socket_path`, `firestore.project_id`, ...).
    ///   - backends: the registered backends; `backend` must name one of them.
    /// - Throws: ``ConfigError`` naming the key (or variable) at the first bad value.
    public static func load(
        file: String?, filePath: String = "", env: [String: String], flags: [String: String] = [:],
        backends: [BackendRegistration]
    ) throws(ConfigError) -> DaemonConfig {
        var c = DaemonConfig()
        var backendKeys: [String: ConfigKey] = [:]
        for b in backends {
            for k in b.keys {
                backendKeys[k.name] = k
                c.backendSettings[k.name] = k.defaultValue
            }
        }
        for key in coreKeys + backendKeys.keys.sorted() { c.sources[key] = "default" }
        func set(_ key: String, _ value: TOMLValue, _ source: String) throws(ConfigError) {
            if let k = backendKeys[key] {
                c.backendSettings[key] = try k.parse(value, source: source)
            } else if coreKeys.contains(key) {
                try c.setCore(key, value, source: source)
            } else {
                let known = (coreKeys + backendKeys.keys.sorted()).joined(separator: ", ")
                throw ConfigError(key: key, "unknown key in \(source); known keys: \(known)")
            }
            c.sources[key] = source
        }

        // Standard variables first, so that the file and MEMORYD_* override them.
        if let v = env["STATE_DIRECTORY"], !v.isEmpty {
            try set("data_dir", .string(String(v.split(separator: ":").first ?? "")), "environment STATE_DIRECTORY")
        }
        for b in backends {
            for (variable, key) in b.standardEnvironment {
                if let v = env[variable], !v.isEmpty { try set(key, .string(v), "environment \(variable)") }
            }
        }
        if let file {
            let table: [String: TOMLValue]
            let source = filePath.isEmpty ? "config file" : filePath
            c.configFile = source
            do { table = try TOML.parse(file) } catch { throw ConfigError(key: "", "\(source): \(error)") }
            for (key, value) in table.sorted(by: { $0.key < $1.key }) { try set(key, value, source) }
        }
        var variables: [String: String] = [:]
        for key in coreKeys + backendKeys.keys.sorted() { variables[environmentVariable(for: key)] = key }
        // One name per setting: the generic name of socket_path would be followed by the daemon but not by
        // memoryctl and the clients, which read MEMORYD_SOCKET.
        if env["MEMORYD_SOCKET_PATH"] != nil {
            throw ConfigError(
                key: "MEMORYD_SOCKET_PATH",
                "is not a setting: socket_path's variable is MEMORYD_SOCKET, the name memoryctl and the clients read too"
            )
        }
        for (name, v) in env.sorted(by: { $0.key < $1.key }) where name.hasPrefix("MEMORYD_") {
            guard let key = variables[name] else {
                if clientVariables.contains(name) { continue }
                throw ConfigError(
                    key: name,
                    "unknown environment variable: no setting is called that (a typo?). Settings are MEMORYD_ + the key in upper case, e.g. MEMORYD_LOG_LEVEL; see memoryd --help"
                )
            }
            try set(key, .string(v), "environment \(name)")
        }
        for (key, v) in flags.sorted(by: { $0.key < $1.key }) { try set(key, .string(v), "flag") }

        if c.backend.isEmpty, let first = backends.first { c.backend = first.name }
        guard let registration = backends.first(where: { $0.answers(to: c.backend) }) else {
            let names = backends.map { ([$0.name] + $0.aliases).joined(separator: " or ") }.joined(separator: ", ")
            throw ConfigError(key: "backend", "\"\(c.backend)\" is not a backend memoryd has: \(names)")
        }
        c.backend = registration.name
        c.workerCount = c.workers > 0 ? c.workers : max(1, registration.defaultWorkers(c))
        try c.validate()
        try registration.validate(c)
        return c
    }

    private mutating func setCore(_ key: String, _ value: TOMLValue, source: String) throws(ConfigError) {
        func int(_ range: ClosedRange<Int>) throws(ConfigError) -> Int {
            try ConfigParse.integer(key, value, range, source)
        }
        switch key {
        case "socket_path": socketPath = try ConfigParse.string(key, value, source)
        case "socket_mode":
            let s = try ConfigParse.string(key, value, source)
            guard let m = UInt32(s.hasPrefix("0o") ? String(s.dropFirst(2)) : s, radix: 8), m <= 0o777 else {
                throw ConfigError(key: key, "\"\(s)\" is not an octal mode like 0660 (\(source))")
            }
            socketMode = m
        case "socket_group": socketGroup = try ConfigParse.string(key, value, source)
        case "backend": backend = try ConfigParse.string(key, value, source)
        case "data_dir": dataDir = try ConfigParse.string(key, value, source)
        case "namespace": namespace = try ConfigParse.string(key, value, source)
        case "embedding_dimension": embeddingDimension = try int(1...Limits.maxEmbeddingDimension)
        case "workers": workers = try int(0...1024)
        case "max_frame_bytes": maxFrameBytes = try int(1024...(64 << 20))
        case "max_connections": maxConnections = try int(1...1_000_000)
        case "max_in_flight_per_connection": maxInFlightPerConnection = try int(1...65536)
        case "queue_capacity": queueCapacity = try int(1...10_000_000)
        case "queue_max_bytes": queueMaxBytes = try int(1024...(1 << 40))
        case "max_output_bytes": maxOutputBytes = try int(4096...(1 << 30))
        case "default_timeout_ms": defaultTimeoutMs = UInt64(try int(1...86_400_000))
        case "drain_timeout_ms": drainTimeoutMs = UInt64(try int(0...3_600_000))
        case "allowed_uids": allowedUIDs = try ConfigParse.ids(key, value, source)
        case "allowed_gids": allowedGIDs = try ConfigParse.ids(key, value, source)
        case "log_level": logLevel = try ConfigParse.string(key, value, source).lowercased()
        case "cache.max_bytes": cacheMaxBytes = try int(0...(1 << 40))
        case "cache.ttl_ms": cacheTTLMs = try int(1...86_400_000)
        case "metrics": metrics = try ConfigParse.bool(key, value, source)
        case "metrics_listen": metricsListen = try ConfigParse.string(key, value, source)
        default: preconditionFailure("\(key) is listed in coreKeys but not handled")
        }
    }

    /// The checks that span keys or need more than a type; the backend's own checks follow.
    public func validate() throws(ConfigError) {
        guard !socketPath.isEmpty, socketPath.utf8.count < 108 else {
            throw ConfigError(key: "socket_path", "\"\(socketPath)\" must be 1 to 107 bytes (the sun_path limit)")
        }
        guard Validation.isValidID(namespace, maxBytes: 64), !namespace.contains(":"), !namespace.contains(".") else {
            throw ConfigError(key: "namespace", "\"\(namespace)\" must be 1 to 64 characters of [A-Za-z0-9_-]")
        }
        guard Self.logLevels.contains(logLevel) else {
            throw ConfigError(
                key: "log_level", "\"\(logLevel)\" is not one of \(Self.logLevels.joined(separator: ", "))")
        }
        guard maxOutputBytes >= maxFrameBytes else {
            throw ConfigError(key: "max_output_bytes", "\(maxOutputBytes) is below max_frame_bytes (\(maxFrameBytes))")
        }
        // A request of max_frame_bytes must fit in an empty queue.
        guard queueMaxBytes >= maxFrameBytes else {
            throw ConfigError(key: "queue_max_bytes", "\(queueMaxBytes) is below max_frame_bytes (\(maxFrameBytes))")
        }
        let listen = try MetricsListen.parse(metricsListen)
        if listen != nil && !metrics {
            throw ConfigError(key: "metrics_listen", "is set but metrics = false records nothing to serve")
        }
    }
}

/// Conversions of a file, environment or flag value to a key's type; each error names the key and source.
enum ConfigParse {
    static func string(_ key: String, _ value: TOMLValue, _ source: String) throws(ConfigError) -> String {
        switch value {
        case .string(let s): return s
        case .integer(let i): return String(i)
        default: throw ConfigError(key: key, "expected a string in \(source)")
        }
    }

    static func integer(_ key: String, _ value: TOMLValue, _ range: ClosedRange<Int>, _ source: String)
        throws(ConfigError) -> Int
    {
        let v: Int
        switch value {
        case .integer(let i): v = i
        case .string(let s):
            guard let i = Int(s.replacing("_", with: "")) else {
                throw ConfigError(key: key, "\"\(s)\" is not an integer (\(source))")
            }
            v = i
        default: throw ConfigError(key: key, "expected an integer in \(source)")
        }
        guard range.contains(v) else {
            throw ConfigError(key: key, "\(v) is out of range \(range.lowerBound)...\(range.upperBound) (\(source))")
        }
        return v
    }

    static func number(_ key: String, _ value: TOMLValue, _ range: ClosedRange<Double>, _ source: String)
        throws(ConfigError) -> Double
    {
        let v: Double
        switch value {
        case .integer(let i): v = Double(i)
        case .float(let d): v = d
        case .string(let s):
            guard let d = Double(s) else { throw ConfigError(key: key, "\"\(s)\" is not a number (\(source))") }
            v = d
        default: throw ConfigError(key: key, "expected a number in \(source)")
        }
        guard range.contains(v) else { throw ConfigError(key: key, "\(v) is out of range \(range) (\(source))") }
        return v
    }

    static func bool(_ key: String, _ value: TOMLValue, _ source: String) throws(ConfigError) -> Bool {
        switch value {
        case .bool(let b): return b
        case .string(let s):
            switch s.lowercased() {
            case "true", "1", "yes", "on": return true
            case "false", "0", "no", "off": return false
            default: throw ConfigError(key: key, "\"\(s)\" is not true or false (\(source))")
            }
        default: throw ConfigError(key: key, "expected true or false in \(source)")
        }
    }

    static func ids(_ key: String, _ value: TOMLValue, _ source: String) throws(ConfigError) -> [UInt32] {
        var parts: [String] = []
        switch value {
        case .string(let s): parts = s.split(separator: ",").map { String($0).trimming(" ") }.filter { !$0.isEmpty }
        case .integer(let i): parts = [String(i)]
        case .array(let a):
            for e in a {
                switch e {
                case .integer(let i): parts.append(String(i))
                case .string(let s): parts.append(s)
                default: throw ConfigError(key: key, "expected a list of numeric ids (\(source))")
                }
            }
        default: throw ConfigError(key: key, "expected a list of numeric ids (\(source))")
        }
        var out: [UInt32] = []
        for p in parts {
            guard let v = UInt32(p) else { throw ConfigError(key: key, "\"\(p)\" is not a numeric id (\(source))") }
            out.append(v)
        }
        return out
    }
}
