import MemoryUtilities

/// The daemon's configuration (SPEC §6): defaults, then the TOML file, then `MEMORYD_*` environment
/// variables (and the standard ones named in the SPEC), then command-line flags.
public struct DaemonConfig: Sendable, Equatable {
    public var socketPath = "/run/memoryd/memoryd.sock"
    public var socketMode: UInt32 = 0o660
    public var socketGroup = ""
    public var backend = "sqlite"
    public var dataDir = "/var/lib/memoryd"
    public var namespace = "default"
    public var embeddingDimension = 768
    public var workers = 0  // 0 = connection_pool_size
    public var maxFrameBytes = 4 * 1024 * 1024
    public var maxConnections = 1024
    public var maxInFlightPerConnection = 256
    public var queueCapacity = 4096
    public var maxOutputBytes = 16 * 1024 * 1024
    public var defaultTimeoutMs: UInt64 = 30_000
    public var drainTimeoutMs: UInt64 = 10_000
    public var allowedUIDs: [UInt32] = []
    public var allowedGIDs: [UInt32] = []
    public var logLevel = "info"
    public var firestore = Firestore()
    public var circuitBreaker = CircuitBreaker()

    public struct Firestore: Sendable, Equatable {
        public var projectID = ""
        public var database = "(default)"
        public var credentialsPath = ""
        public var emulatorHost = ""
        public var connectionPoolSize = 10
        public var batchSize = 400
        public var requestTimeoutMs = 10_000
        public var maxRetries = 5
    }

    public struct CircuitBreaker: Sendable, Equatable {
        public var failureThreshold = 5
        public var recoveryTimeoutS: Double = 30
    }

    public init() {}

    /// Worker threads (= backend connections).
    public var workerCount: Int { workers > 0 ? workers : firestore.connectionPoolSize }

    public var limits: Limits { Limits(embeddingDimension: embeddingDimension) }

    public static let defaultPath = "/etc/memoryd/memoryd.toml"
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
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
    /// Builds the configuration from its layers. `file` is the TOML text (nil when there is none), `env`
    /// the process environment, `flags` the command-line overrides keyed like the file (`socket_path`, ...).
    public static func load(
        file: String?, filePath: String = "", env: [String: String],
        flags: [String: String] = [:]
    ) throws(ConfigError) -> DaemonConfig {
        var c = DaemonConfig()
        // Standard variables first, so that the file and MEMORYD_* override them.
        if let v = env["GOOGLE_CLOUD_PROJECT"], !v.isEmpty { c.firestore.projectID = v }
        if let v = env["GOOGLE_APPLICATION_CREDENTIALS"], !v.isEmpty { c.firestore.credentialsPath = v }
        if let v = env["FIRESTORE_EMULATOR_HOST"], !v.isEmpty { c.firestore.emulatorHost = v }
        if let v = env["STATE_DIRECTORY"], !v.isEmpty { c.dataDir = String(v.split(separator: ":").first ?? "") }
        if let file {
            let table: [String: TOMLValue]
            do { table = try TOML.parse(file) } catch {
                throw ConfigError(key: "", "\(filePath.isEmpty ? "config" : filePath): \(error)")
            }
            for (key, value) in table.sorted(by: { $0.key < $1.key }) {
                try c.set(key, value, source: filePath.isEmpty ? "config file" : filePath)
            }
        }
        for key in Self.keys {
            let name = "MEMORYD_" + key.uppercased().replacing(".", with: "_")
            if let v = env[name] { try c.set(key, .string(v), source: "environment variable \(name)") }
        }
        for (key, v) in flags.sorted(by: { $0.key < $1.key }) { try c.set(key, .string(v), source: "flag") }
        try c.validate()
        return c
    }

    /// Every key the file, the environment and flags accept.
    public static let keys: [String] = [
        "socket_path", "socket_mode", "socket_group", "backend", "data_dir", "namespace", "embedding_dimension",
        "workers", "max_frame_bytes", "max_connections", "max_in_flight_per_connection", "queue_capacity",
        "max_output_bytes", "default_timeout_ms", "drain_timeout_ms", "allowed_uids", "allowed_gids", "log_level",
        "firestore.project_id", "firestore.database", "firestore.credentials_path", "firestore.emulator_host",
        "firestore.connection_pool_size", "firestore.batch_size", "firestore.request_timeout_ms",
        "firestore.max_retries",
        "circuit_breaker.failure_threshold", "circuit_breaker.recovery_timeout_s",
    ]

    private mutating func set(_ key: String, _ value: TOMLValue, source: String) throws(ConfigError) {
        func str() throws(ConfigError) -> String {
            switch value {
            case .string(let s): return s
            case .integer(let i): return String(i)
            default: throw ConfigError(key: key, "expected a string in \(source)")
            }
        }
        func int(_ range: ClosedRange<Int>) throws(ConfigError) -> Int {
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
                throw ConfigError(
                    key: key, "\(v) is out of range \(range.lowerBound)...\(range.upperBound) (\(source))")
            }
            return v
        }
        func double(_ range: ClosedRange<Double>) throws(ConfigError) -> Double {
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
        func ids() throws(ConfigError) -> [UInt32] {
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
        switch key {
        case "socket_path": socketPath = try str()
        case "socket_mode":
            let s = try str()
            guard let m = UInt32(s.hasPrefix("0o") ? String(s.dropFirst(2)) : s, radix: 8), m <= 0o777 else {
                throw ConfigError(key: key, "\"\(s)\" is not an octal mode like 0660 (\(source))")
            }
            socketMode = m
        case "socket_group": socketGroup = try str()
        case "backend": backend = try str()
        case "data_dir": dataDir = try str()
        case "namespace": namespace = try str()
        case "embedding_dimension": embeddingDimension = try int(1...Limits.maxEmbeddingDimension)
        case "workers": workers = try int(0...1024)
        case "max_frame_bytes": maxFrameBytes = try int(1024...(64 << 20))
        case "max_connections": maxConnections = try int(1...1_000_000)
        case "max_in_flight_per_connection": maxInFlightPerConnection = try int(1...65536)
        case "queue_capacity": queueCapacity = try int(1...10_000_000)
        case "max_output_bytes": maxOutputBytes = try int(4096...(1 << 30))
        case "default_timeout_ms": defaultTimeoutMs = UInt64(try int(1...86_400_000))
        case "drain_timeout_ms": drainTimeoutMs = UInt64(try int(0...3_600_000))
        case "allowed_uids": allowedUIDs = try ids()
        case "allowed_gids": allowedGIDs = try ids()
        case "log_level": logLevel = try str().lowercased()
        case "firestore.project_id": firestore.projectID = try str()
        case "firestore.database": firestore.database = try str()
        case "firestore.credentials_path": firestore.credentialsPath = try str()
        case "firestore.emulator_host": firestore.emulatorHost = try str()
        case "firestore.connection_pool_size": firestore.connectionPoolSize = try int(1...256)
        case "firestore.batch_size": firestore.batchSize = try int(1...10_000)
        case "firestore.request_timeout_ms": firestore.requestTimeoutMs = try int(1...600_000)
        case "firestore.max_retries": firestore.maxRetries = try int(0...100)
        case "circuit_breaker.failure_threshold": circuitBreaker.failureThreshold = try int(1...1_000_000)
        case "circuit_breaker.recovery_timeout_s": circuitBreaker.recoveryTimeoutS = try double(0.001...86_400)
        default:
            throw ConfigError(key: key, "unknown key in \(source); known keys: \(Self.keys.joined(separator: ", "))")
        }
    }

    public func validate() throws(ConfigError) {
        if backend == "firestore_v2" { /* alias, normalized by the caller */
        } else {
            guard backend == "sqlite" || backend == "firestore" else {
                throw ConfigError(
                    key: "backend", "\"\(backend)\" is not sqlite or firestore (or its alias firestore_v2)")
            }
        }
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
        if backend != "sqlite" {
            guard !firestore.projectID.isEmpty else {
                throw ConfigError(
                    key: "firestore.project_id", "is required for the firestore backend (or set GOOGLE_CLOUD_PROJECT)")
            }
        } else {
            guard !dataDir.isEmpty else { throw ConfigError(key: "data_dir", "must not be empty") }
        }
    }

    /// `firestore_v2` is the original system's name for the Firestore backend.
    public var normalizedBackend: String { backend == "firestore_v2" ? "firestore" : backend }
}
