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
        answeredCalls?.loopAnswered(ServerMetrics.slot(method, code))
    }

    /// A queued call answered (by its worker, a Cancel or its deadline): timed from its arrival to the write.
    @inline(__always)
    func answered(_ call: Call, _ code: @autoclosure () -> StatusCode) {
        answeredCalls?.queuedAnswered(ServerMetrics.slot(call.method, code()), receivedAt: call.receivedAt)
    }

    /// After a flush: records the calls answered since the last one, with one clock reading.
    func recordAnsweredCalls() { answeredCalls?.record() }

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
