import CLibUV
import Logging
import MemoryDomain
import MemoryUtilities
import MemoryWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Figures for HealthCheck, systemd's STATUS= and the watchdog.
extension Server {
    // MARK: - Health and status

    func healthFiguresProvider() -> @Sendable () -> MemoryService.HealthFigures {
        let stats = self.stats
        let backend = self.backend
        let workers = config.workerCount
        let queue = workQueue
        let isFirestore = backend.reportsAsFirestore
        let cache = self.cache
        let namespace = config.namespace
        return {
            let (errors, last) = stats.recentErrors()
            var d = backend.statistics()
            d["namespace"] = .string(namespace)
            d["connection_pool_size"] = .number(Double(workers))
            d["connections_in_use"] = .number(Double(stats.busyWorkers.load(ordering: .relaxed)))
            d["queue_depth"] = .number(Double(queue.depth))
            d["queue_bytes"] = .number(Double(stats.queuedBytes.value))
            d["client_connections"] = .number(Double(stats.connections.load(ordering: .relaxed)))
            d["calls_in_flight"] = .number(Double(stats.inFlight.load(ordering: .relaxed)))
            d["error_count"] = .number(Double(errors))
            d["last_error"] = .string(last)
            if d["circuit_state"] == nil { d["circuit_state"] = .string("closed") }
            if let cache {
                let f = cache.figures
                let hits = cache.hits.load(ordering: .relaxed), misses = cache.misses.load(ordering: .relaxed)
                d["cache_bytes"] = .number(Double(f.bytes))
                d["cache_entries"] = .number(Double(f.entries))
                d["cache_hits"] = .number(Double(hits))
                d["cache_misses"] = .number(Double(misses))
                d["cache_hit_ratio"] = .number(hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses))
            } else {
                d["cache_max_bytes"] = .number(0)
            }
            return MemoryService.HealthFigures(backend: backend.name, firestore: isFirestore, details: d)
        }
    }

    func statusLine() -> String {
        "serving \(stats.connections.load(ordering: .relaxed)) connections, \(stats.inFlight.load(ordering: .relaxed)) calls in flight, \(stats.callsTotal.load(ordering: .relaxed)) calls total (\(backend.name))"
    }

    func housekeeping() {
        let now = monotonicNanos()
        if let interval = watchdogInterval, now - lastWatchdog >= interval * 1000 / 2 {
            lastWatchdog = now
            systemd.notify("WATCHDOG=1")
        }
        let status = statusLine()
        if status != lastStatus && !draining {
            lastStatus = status
            systemd.notify("STATUS=\(status)")
        }
    }
}
