import CLibUV
import Logging
import MemoryDomain
import MemoryMetrics
import MemoryUtilities
import MemoryWire

/// Metrics on the loop thread: answered calls counted and timed (one clock reading per flush), GetMetrics
/// answered in place, and the HTTP endpoint started and stopped. Each hook elsewhere is one line where the
/// event happens.
extension Server {
    // MARK: - Answered calls

    /// A call answered on the loop without a `Call` (Ping, GetMetrics, an unknown method, a full queue): timed
    /// from the first such call of this batch to the write.
    @inline(__always)
    func answeredOnLoop(_ method: MemoryMethod?, _ code: StatusCode) {
        guard metrics != nil else { return }
        if answeredCalls.loopStart == 0 { answeredCalls.loopStart = monotonicNanos() }
        answeredCalls.slots.append(ServerMetrics.slot(method, code))
        answeredCalls.starts.append(0)
    }

    /// A queued call answered (by its worker, a Cancel or its deadline): timed from its arrival to the write.
    @inline(__always)
    func answered(_ call: Call, _ code: @autoclosure () -> StatusCode) {
        guard metrics != nil else { return }
        answeredCalls.slots.append(ServerMetrics.slot(call.method, code()))
        answeredCalls.starts.append(call.receivedAt)
    }

    /// After a flush: records the calls answered since the last one, with one clock reading.
    func recordAnsweredCalls() {
        guard !answeredCalls.isEmpty, let metrics else { return }
        let now = monotonicNanos()
        for i in 0..<answeredCalls.slots.count {
            let s = answeredCalls.starts[i]
            let start = s == 0 ? answeredCalls.loopStart : s
            metrics.record(slot: answeredCalls.slots[i], nanoseconds: now >= start ? now - start : 0)
        }
        answeredCalls.slots.removeAll(keepingCapacity: answeredCalls.slots.capacity <= 4096)
        answeredCalls.starts.removeAll(keepingCapacity: answeredCalls.starts.capacity <= 4096)
        answeredCalls.loopStart = 0
    }

    // MARK: - GetMetrics

    /// GetMetrics is answered on the loop thread: rendering reads atomics and /proc, cheaper than the hop to
    /// a worker and back.
    func answerGetMetrics(_ r: FrameDecoder.RequestView, on conn: Connection) {
        func fail(_ error: MemoryError) {
            respond(conn, r.id, error)
            answeredOnLoop(.getMetrics, error.code)
        }
        if r.payload.count > 0 {
            do throws(MemoryError) {
                _ = try PayloadCodec.decodeRequest(.getMetrics, r.payload)
            } catch {
                return fail(error)
            }
        }
        guard let metrics else {
            return fail(.call(.unavailable, "metrics are off on this daemon (metrics = false)"))
        }
        let payload = PayloadCodec.encodeResponse(.getMetrics(text: metrics.render()))
        guard payload.count + 64 <= maxFrameBytes else {
            return fail(
                .call(.resourceExhausted, "the metrics text is \(payload.count) bytes, over max_frame_bytes"))
        }
        payload.withUnsafeBytes { conn.appendResponse(id: r.id, payload: $0) }
        answeredOnLoop(.getMetrics, .ok)
    }

    // MARK: - The HTTP endpoint

    /// Starts `GET /metrics` when `metrics_listen` is set.
    func startMetricsEndpoint() throws {
        guard let metrics, let listen = try MetricsListen.parse(config.metricsListen) else { return }
        let endpoint = try MetricsEndpoint(
            loop: loop, listen: listen, socketMode: config.socketMode, socketGroup: config.socketGroup,
            logger: logger, render: { metrics.render() })
        metricsEndpoint = endpoint
        logger.info("metrics endpoint serving GET /metrics", metadata: ["metrics.listen": "\(endpoint.address)"])
    }

    func stopMetricsEndpoint() {
        metricsEndpoint?.stop()
        metricsEndpoint = nil
    }
}
