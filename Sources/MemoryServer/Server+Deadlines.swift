import CLibUV
import Logging
import MemoryDomain
import MemoryUtilities
import MemoryWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Call deadlines: one timer over a min-heap of every call's deadline.
///
/// A call answered before its deadline leaves its entry behind (removing from the middle of a heap is not
/// worth it); the entry holds a small `Call` without its payload, and the leftovers are swept whenever they
/// outnumber the calls in flight, so the heap stays within twice what is in flight (plus a constant) whatever
/// the deadlines — one day at most. A call stays in the heap as long as its connection has it in flight: a
/// running call the client cancelled is still answered DEADLINE_EXCEEDED at its deadline.
extension Server {
    // MARK: - Deadlines

    func addDeadline(_ call: Call) {
        deadlines.push(.init(deadline: call.deadline.uptimeNanos, call: call))
        if deadlines.count > 2 * stats.inFlight.load(ordering: .relaxed) + 64 {
            deadlines.removeAll(keepingOnly: isInFlight)
        }
        armDeadlineTimer()
    }

    /// True while `call` is in its connection's calls in flight: not answered, abandoned or closed.
    func isInFlight(_ call: Call) -> Bool {
        connections[call.connectionID]?.inFlight[call.requestID] === call
    }

    func armDeadlineTimer() {
        guard let earliest = deadlines.earliest else {
            uvMust(uv_timer_stop(deadlineTimer), "uv_timer_stop")
            deadlineArmedFor = .max
            return
        }
        guard earliest < deadlineArmedFor else { return }
        deadlineArmedFor = earliest
        let now = monotonicNanos()
        let ms = earliest > now ? (earliest - now + 999_999) / 1_000_000 : 0
        uvMust(
            uv_timer_start(deadlineTimer, { t in Server.from(t!.pointee.loop).deadlinesPassed() }, ms, 0),
            "uv_timer_start")
    }

    func deadlinesPassed() {
        deadlineArmedFor = .max
        let now = monotonicNanos()
        while let e = deadlines.earliest, e <= now {
            let call = deadlines.pop()!.call
            guard isInFlight(call), let conn = connections[call.connectionID] else { continue }
            call.abandon()
            conn.inFlight[call.requestID] = nil
            stats.inFlight.subtract(1, ordering: .relaxed)
            respond(
                conn, call.requestID,
                .call(.deadlineExceeded, "deadline exceeded after \(call.timeoutMs) ms (\(call.method.rawValue))"))
            answered(call, .deadlineExceeded)
            conn.resumeIfBelowLimit()
        }
        flushOutput()
        armDeadlineTimer()
    }
}
