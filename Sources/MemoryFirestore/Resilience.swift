import MemoryDomain
import MemoryPosix
import MemoryUtilities
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Exponential backoff with jitter: 100 ms, ×2 per attempt, capped at 5 s, each delay ±30%.
/// (Google's BulkWriter starts at 1 s; memoryd's calls carry short deadlines, so it starts lower.)
struct RetryPolicy: Sendable {
    var maxRetries: Int
    var initialDelayMs: Double = 100
    var multiplier: Double = 2
    var maxDelayMs: Double = 5000
    var jitter: Double = 0.3

    /// The delay before retry number `attempt` (0-based).
    func delayMs(attempt: Int) -> Double {
        var d = initialDelayMs
        for _ in 0..<min(attempt, 30) { d *= multiplier }
        d = min(d, maxDelayMs)
        return d * Double.random(in: (1 - jitter)...(1 + jitter))
    }
}

func sleepMilliseconds(_ ms: Double) {
    guard ms > 0 else { return }
    sleepNanoseconds(UInt64(ms * 1_000_000))
}

/// A circuit breaker shared by all connections of a backend.
///
/// CLOSED: requests flow; `failureThreshold` consecutive failures open it. OPEN: requests fail fast until
/// `recoveryTimeout` has passed, then one probe request is let through (HALF_OPEN) while others keep
/// failing fast; the probe's success closes the circuit, its failure opens it again for another period.
/// Only failures of the backend count (unreachable, timeouts, 5xx, auth): a not-found, a duplicate or a
/// rejected argument shows the backend is working.
final class CircuitBreaker: Sendable {
    enum State: String, Sendable {
        case closed, open
        case halfOpen = "half_open"
    }

    private struct Inner {
        var state: State = .closed
        var consecutiveFailures = 0
        var openedAt: UInt64 = 0
        var probeInFlight = false
        var lastError = ""
    }

    private let inner = Mutex(Inner())
    let failureThreshold: Int
    let recoveryTimeoutNanos: UInt64

    init(failureThreshold: Int, recoveryTimeoutS: Double) {
        self.failureThreshold = max(1, failureThreshold)
        self.recoveryTimeoutNanos = UInt64(max(0, recoveryTimeoutS) * 1e9)
    }

    /// The state as callers see it now (an open circuit whose timeout has passed reads as half-open).
    var state: State {
        inner.withLock { s in
            if s.state == .open, monotonicNanos() &- s.openedAt >= recoveryTimeoutNanos { return .halfOpen }
            return s.state
        }
    }

    var lastError: String { inner.withLock { $0.lastError } }

    /// Asks to send one request. Throws a ConnectionError while the circuit is open (or while another
    /// request is the half-open probe). Every successful `acquire` must be followed by `record`.
    func acquire(operation: String) throws(MemoryError) {
        let result: MemoryError? = inner.withLock { s in
            switch s.state {
            case .closed:
                return nil
            case .open:
                let waited = monotonicNanos() &- s.openedAt
                if waited >= recoveryTimeoutNanos {
                    s.state = .halfOpen
                    s.probeInFlight = true
                    return nil
                }
                let left = Double(recoveryTimeoutNanos - waited) / 1e9
                return .connection(
                    "circuit open after \(s.consecutiveFailures) consecutive Firestore failures "
                        + "(last: \(s.lastError)); next probe in \(Int(left.rounded(.up))) s", operation: operation)
            case .halfOpen:
                if s.probeInFlight {
                    return .connection(
                        "circuit half-open: a probe request is in flight (last error: \(s.lastError))",
                        operation: operation)
                }
                s.probeInFlight = true
                return nil
            }
        }
        if let result { throw result }
    }

    /// Reports how the request let through by `acquire` went.
    func record(success: Bool, error: String = "") {
        inner.withLock { s in
            if success {
                s.state = .closed
                s.consecutiveFailures = 0
                s.probeInFlight = false
                return
            }
            s.lastError = error
            s.consecutiveFailures += 1
            if s.state == .halfOpen || (s.state == .closed && s.consecutiveFailures >= failureThreshold) {
                s.state = .open
                s.openedAt = monotonicNanos()
                s.probeInFlight = false
            }
        }
    }
}
