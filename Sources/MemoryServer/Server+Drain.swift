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
/// `drain_timeout_ms`, then close the loop's handles. The drain never waits past `drain_timeout_ms` (or a second
/// signal): a worker still inside a backend call by then is left behind, and ``run()`` reports it.
extension Server {
    // MARK: - Signals, drain, reload

    func handleSignal(_ signum: Int32) {
        switch signum {
        case SIGHUP: reload()
        default:
            let name = signum == SIGTERM ? "SIGTERM" : "SIGINT"
            if draining {
                logger.notice("\(name) again: closing connections now")
                drainCutShort = true
                closeAllConnections()
                if connections.isEmpty { finishDrain() }
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
        // One timer bounds the whole drain: the connections' calls, then the workers' last calls.
        let t = uvAllocate(uv_timer_t.self)
        uvMust(uv_timer_init(loop, t), "uv_timer_init")
        drainTimer = t
        uvMust(
            uv_timer_start(t, { t in Server.from(t!.pointee.loop).drainTimeoutPassed() }, config.drainTimeoutMs, 0),
            "uv_timer_start")
        if connections.isEmpty { finishDrain() }
    }

    func drainTimeoutPassed() {
        drainCutShort = true
        if connections.isEmpty {
            finishDrain()  // only workers were left to wait for
            return
        }
        logger.warning(
            "drain timeout reached; closing the remaining connections",
            metadata: ["connections": "\(connections.count)", "drain_timeout_ms": "\(config.drainTimeoutMs)"])
        closeAllConnections()  // each close ends in connectionDidClose, the last one in finishDrain
    }

    func closeAllConnections() {
        for conn in Array(connections.values) { conn.close() }
    }

    /// Every connection is gone: stop the workers, then close the loop's own handles so `uv_run` returns.
    /// Called again whenever a worker exits (``drainCompletions()``) until none is left, or the drain's time is
    /// up: then the workers still inside a backend call are left behind.
    func finishDrain() {
        guard draining, connections.isEmpty, !stoppingLoop else { return }
        workQueue.close()
        let busy = workersInCalls
        stopMetricsEndpoint()
        if busy.isEmpty {
            stoppingLoop = true
            joinWorkers(except: [])  // each has sent its last uv_async_send once joined
            closeAllHandles()
            return
        }
        guard drainCutShort else { return }  // wait for the workers' async wake-ups, or the drain timer
        stoppingLoop = true
        let now = monotonicNanos()
        for w in busy {
            let running = w.running.withLock { $0 }
            logger.error(
                "drain: a worker is still inside a backend call; exiting without it",
                metadata: [
                    "worker": "\(w.index)", "method": "\(running?.method.rawValue ?? "-")",
                    "running_ms": "\(running.map { (now &- $0.since) / 1_000_000 } ?? 0)",
                    "drain_timeout_ms": "\(config.drainTimeoutMs)",
                ])
        }
        stuckWorkers = busy
        joinWorkers(except: busy)
        // A stuck worker will still call uv_async_send when its call returns: that handle stays open (and
        // unreferenced, so that uv_run returns) until the process exits.
        closeAllHandles(except: async)
        uv_unref(cuv_handle(async))
    }

    func closeAllHandles(except kept: UnsafeMutablePointer<uv_async_t>? = nil) {
        let keep = kept.flatMap { UnsafeMutableRawPointer(cuv_handle($0)) }
        uv_walk(
            loop,
            { h, keep in
                guard let h, uv_is_closing(h) == 0, UnsafeMutableRawPointer(h) != keep else { return }
                if h.pointee.type == UV_NAMED_PIPE, h.pointee.data != nil {
                    let loopServer = Server.from(h.pointee.loop)
                    if loopServer.connections.values.contains(where: { cuv_handle($0.handle) == h }) {
                        Unmanaged<Connection>.fromOpaque(h.pointee.data).takeUnretainedValue().close()
                        return
                    }
                }
                uv_close(h) { h in h?.deallocate() }
            }, keep)
        // Closing the signal handles restored the default dispositions; a late SIGTERM while the process
        // finishes its exit must not turn a clean exit 0 into "killed by SIGTERM".
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGHUP, SIG_IGN)
    }
}
