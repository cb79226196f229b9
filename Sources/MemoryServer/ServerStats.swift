import MemoryDomain
import MemoryUtilities
import Synchronization

/// Live figures shared by the loop and the workers, for HealthCheck and systemd's STATUS=.
final class ServerStats: Sendable {
    let connections = Atomic<Int>(0)
    let inFlight = Atomic<Int>(0)
    let busyWorkers = Atomic<Int>(0)
    let callsTotal = Atomic<Int>(0)
    let protocolErrors = Atomic<Int>(0)
    /// Payload bytes of the calls waiting for a worker (bounded by `queue_max_bytes`).
    let queuedBytes = QueuedBytes()
    private let errors = Mutex<ErrorWindow>(ErrorWindow())

    struct ErrorWindow {
        var times: [UInt64] = []
        var last = ""
    }

    /// Storage errors (not validation/not-found/duplicate) count towards health.
    func record(_ error: MemoryError) {
        switch error.type {
        case .storage, .connection, .operation: break
        default: return
        }
        let now = monotonicNanos()
        errors.withLock { w in
            w.times.append(now)
            w.last = error.description
            if w.times.count > 10_000 { w.times.removeFirst(w.times.count - 10_000) }
        }
    }

    /// Errors in the last minute, and the last error message.
    func recentErrors() -> (count: Int, last: String) {
        let cutoff = monotonicNanos() &- 60_000_000_000
        return errors.withLock { w in
            w.times.removeAll { $0 < cutoff }
            return (w.times.count, w.last)
        }
    }
}
