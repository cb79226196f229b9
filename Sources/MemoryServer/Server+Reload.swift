import CLibUV
import Logging
import MemoryDomain
import MemoryUtilities
import MemoryWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// SIGHUP: re-read the configuration and apply what can change while running.
extension Server {
    func reload() {
        do {
            let new = try reloadConfig()
            let changed = new.changedKeys(from: config)
            let applied = changed.filter { DaemonConfig.reloadableKeys.contains($0) }
            let needRestart = changed.filter { !DaemonConfig.reloadableKeys.contains($0) }
            let old = config
            if let level = Logger.Level(rawValue: new.logLevel) {
                StderrLogHandler.sharedLevel.store(level.rank, ordering: .relaxed)
            }
            config.logLevel = new.logLevel
            config.maxInFlightPerConnection = new.maxInFlightPerConnection
            connectionLimits.maxInFlight = new.maxInFlightPerConnection
            config.defaultTimeoutMs = new.defaultTimeoutMs
            config.maxOutputBytes = max(new.maxOutputBytes, config.maxFrameBytes)
            connectionLimits.maxOutputBytes = config.maxOutputBytes
            config.maxConnections = new.maxConnections
            config.allowedUIDs = new.allowedUIDs
            config.allowedGIDs = new.allowedGIDs
            config.drainTimeoutMs = new.drainTimeoutMs
            func describe(_ keys: [String]) -> String {
                func bare(_ v: String?) -> String {
                    guard let v else { return "?" }
                    return v.hasPrefix("\"") && v.hasSuffix("\"") && v.count >= 2 ? String(v.dropFirst().dropLast()) : v
                }
                return keys.map { "\($0): \(bare(old.tomlValue($0))) -> \(bare(new.tomlValue($0)))" }.joined(
                    separator: ", ")
            }
            var metadata: Logger.Metadata = [
                "config": "\(new.configFile ?? "none")", "log_level": "\(new.logLevel)",
                "applied": "\(applied.isEmpty ? "nothing changed" : describe(applied))",
            ]
            if !needRestart.isEmpty { metadata["needs_restart"] = "\(describe(needRestart))" }
            if new.configFile == nil {
                logger.warning(
                    "configuration reloaded, but there is no configuration file: defaults, environment and flags apply",
                    metadata: metadata)
            } else {
                logger.notice("configuration reloaded", metadata: metadata)
            }
            if !needRestart.isEmpty {
                logger.warning(
                    "changed settings that apply only after a restart; running with the old values",
                    metadata: ["needs_restart": "\(needRestart.joined(separator: ", "))"])
            }
            systemd.notify("STATUS=\(statusLine())")
        } catch {
            logger.error("reload failed; keeping the running configuration", metadata: ["error": "\(error)"])
        }
    }
}
