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
extension Server {
    // MARK: - Deadlines

    func addDeadline(_ call: Call) {
        deadlines.push(.init(deadline: call.deadline.uptimeNanos, call: call))
        if deadlines.count > 4096 && deadlines.count > 4 * stats.inFlight.load(ordering: .relaxed) {
            deadlines.removeFinished()
        }
        armDeadlineTimer()
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
            guard let conn = connections[call.connectionID], conn.inFlight[call.requestID] === call else { continue }
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
