import MemoryUtilities

/// The configuration as people read it: each key's effective value as a TOML literal, where it came from,
/// what differs between two configurations, and what a reload can apply.
extension DaemonConfig {
    /// The keys SIGHUP applies while running; a change to any other key needs a restart.
    public static let reloadableKeys: Set<String> = [
        "log_level", "max_connections", "max_in_flight_per_connection", "default_timeout_ms", "max_output_bytes",
        "drain_timeout_ms", "allowed_uids", "allowed_gids",
    ]

    /// Every key this configuration knows: the daemon's, then every registered backend's, sorted.
    public var allKeys: [String] { Self.coreKeys + backendSettings.keys.sorted() }

    /// A key's effective value as a TOML literal (`"sqlite"`, `768`, `[0, 1000]`, `"0660"`); nil for an
    /// unknown key.
    public func tomlValue(_ key: String) -> String? {
        func quoted(_ s: String) -> String { JSONValue.string(s).serialized() }
        func list(_ ids: [UInt32]) -> String { "[" + ids.map(String.init).joined(separator: ", ") + "]" }
        switch key {
        case "socket_path": return quoted(socketPath)
        case "socket_mode": return quoted("0" + String(socketMode, radix: 8))
        case "socket_group": return quoted(socketGroup)
        case "backend": return quoted(backend)
        case "data_dir": return quoted(dataDir)
        case "namespace": return quoted(namespace)
        case "embedding_dimension": return String(embeddingDimension)
        case "workers": return String(workers)
        case "max_frame_bytes": return String(maxFrameBytes)
        case "max_connections": return String(maxConnections)
        case "max_in_flight_per_connection": return String(maxInFlightPerConnection)
        case "queue_capacity": return String(queueCapacity)
        case "queue_max_bytes": return String(queueMaxBytes)
        case "max_output_bytes": return String(maxOutputBytes)
        case "default_timeout_ms": return String(defaultTimeoutMs)
        case "drain_timeout_ms": return String(drainTimeoutMs)
        case "allowed_uids": return list(allowedUIDs)
        case "allowed_gids": return list(allowedGIDs)
        case "log_level": return quoted(logLevel)
        case "metrics": return metrics ? "true" : "false"
        case "metrics_listen": return quoted(metricsListen)
        case "cache.max_bytes": return String(cacheMaxBytes)
        case "cache.ttl_ms": return String(cacheTTLMs)
        default:
            switch backendSettings[key] {
            case .string(let s)?: return quoted(s)
            case .integer(let i)?: return String(i)
            case .number(let d)?: return JSONValue.format(d)
            case nil: return nil
            }
        }
    }

    /// The keys whose values differ from `old`, in `allKeys` order.
    public func changedKeys(from old: DaemonConfig) -> [String] {
        allKeys.filter { tomlValue($0) != old.tomlValue($0) }
    }

    /// The effective configuration as a TOML file: the daemon's keys, then those of `backendKeys` (the chosen
    /// backend's), each followed by where its value came from. Loading it gives the same configuration.
    public func effectiveTOML(backendKeys: [String]) -> String {
        func line(_ key: String, _ name: String) -> String {
            let assignment = "\(name) = \(tomlValue(key) ?? "\"\"")"
            let padded =
                assignment.count < 40 ? assignment + String(repeating: " ", count: 40 - assignment.count) : assignment
            return padded + "  # " + (sources[key] ?? "default")
        }
        // Top-level keys first (TOML puts everything after a [section] header into it), then each section.
        let keys = Self.coreKeys + backendKeys.sorted()
        var lines = keys.filter { !$0.contains(".") }.map { line($0, $0) }
        var section = ""
        for key in keys.filter({ $0.contains(".") }).sorted() {
            let dot = key.firstIndex(of: ".")!
            let s = String(key[..<dot])
            if s != section {
                section = s
                lines.append("")
                lines.append("[\(s)]")
            }
            lines.append(line(key, String(key[key.index(after: dot)...])))
        }
        return lines.joined(separator: "\n")
    }
}

/// What `memoryd --check-config` found beyond the values themselves: the start refuses an error; a warning
/// only tells (the backend may come up later).
public struct ConfigFinding: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable { case error, warning }

    public var severity: Severity
    public var key: String
    public var message: String

    public init(_ severity: Severity, key: String, _ message: String) {
        self.severity = severity
        self.key = key
        self.message = message
    }

    public var description: String { "\(severity.rawValue): \(key.isEmpty ? "" : key + ": ")\(message)" }
}
