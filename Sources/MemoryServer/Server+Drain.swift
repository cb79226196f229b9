import CLibUV
import Logging
import MemoryDomain
import MemoryUtilities
import MemoryWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Signals and drain: SIGTERM/SIGINT stop accepting, send GoAway, finish what is in flight within
/// `drain_timeout_ms`, then close the loop's handles.
extension Server {
    // MARK: - Signals, drain, reload

    func handleSignal(_ signum: Int32) {
        switch signum {
        case SIGHUP: reload()
        default:
            let name = signum == SIGTERM ? "SIGTERM" : "SIGINT"
            if draining {
                logger.notice("\(name) again: closing connections now")
                closeAllConnections()
            } else {
                logger.info(
                    "\(name): draining",
                    metadata: [
                        "connections": "\(connections.count)",
                        "in_flight": "\(stats.inFlight.load(ordering: .relaxed))",
                    ])
                beginDrain()
            }
        }
    }

    /// Stop accepting, send GoAway everywhere, finish what is in flight (bounded by drain_timeout_ms).
    public func beginDrain() {
        guard !draining else { return }
        draining = true
        systemd.notify("STOPPING=1\nSTATUS=draining \(connections.count) connections")
        if let l = listener {
            uvCloseAndFree(l)
            listener = nil
        }
        for conn in Array(connections.values) {
            conn.goAway(.unavailable, "server is shutting down")
            conn.closeIfIdle()
        }
        flushOutput()
        if connections.isEmpty {
            finishDrain()
            return
        }
        let t = uvAllocate(uv_timer_t.self)
        uvMust(uv_timer_init(loop, t), "uv_timer_init")
        drainTimer = t
        let rc = uv_timer_start(
            t,
            { t in
                let s = Server.from(t!.pointee.loop)
                s.logger.warning(
                    "drain timeout reached; closing the remaining connections",
                    metadata: ["connections": "\(s.connections.count)"])
                s.closeAllConnections()
            }, config.drainTimeoutMs, 0)
        uvMust(rc, "uv_timer_start")
    }

    func closeAllConnections() {
        for conn in Array(connections.values) { conn.close() }
    }

    /// Every connection is gone: stop the workers (a call still running finishes first; they use the async
    /// handle until then), then close the loop's own handles so `uv_run` returns.
    func finishDrain() {
        stopMetricsEndpoint()
        stopWorkers()
        closeAllHandles()
    }

    func closeAllHandles() {
        uv_walk(
            loop,
            { h, _ in
                guard let h, uv_is_closing(h) == 0 else { return }
                if h.pointee.type == UV_NAMED_PIPE, h.pointee.data != nil {
                    let loopServer = Server.from(h.pointee.loop)
                    if loopServer.connections.values.contains(where: { cuv_handle($0.handle) == h }) {
                        Unmanaged<Connection>.fromOpaque(h.pointee.data).takeUnretainedValue().close()
                        return
                    }
                }
                uv_close(h) { h in h?.deallocate() }
            }, nil)
        // Closing the signal handles restored the default dispositions; a late SIGTERM while the process
        // finishes its exit must not turn a clean exit 0 into "killed by SIGTERM".
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGHUP, SIG_IGN)
    }
}
