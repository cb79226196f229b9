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
            logger.notice("configuration reloaded", metadata: ["log_level": "\(new.logLevel)"])
            systemd.notify("STATUS=\(statusLine())")
        } catch {
            logger.error("reload failed; keeping the running configuration", metadata: ["error": "\(error)"])
        }
    }
}
