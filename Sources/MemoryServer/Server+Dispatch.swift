import CLibUV
import Logging
import MemoryDomain
import MemoryUtilities
import MemoryWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Dispatch on the loop thread: frames to requests, Ping answered in place, the rest queued for the workers;
/// Cancel.
extension Server {
    // MARK: - Frames

    func connection(_ conn: Connection, received body: UnsafeRawBufferPointer) {
        // Requests, the hot path: decoded in place.
        do throws(FrameCodec.DecodeError) {
            if try decoder.withRequest(body, { r in handleRequest(r, on: conn) }) != nil { return }
        } catch {
            conn.protocolViolation(ProtocolViolation(error), "\(error)")
            return
        }
        let frame: Frame
        do {
            frame = try FrameCodec.decode(body)
        } catch {
            conn.protocolViolation(ProtocolViolation(error), "\(error)")
            return
        }
        switch frame {
        case .request: break  // handled above
        case .cancel(let id): handleCancel(id, on: conn)
        case .response: conn.protocolViolation(.responseFromClient, "a client may not send Response frames")
        case .goAway:
            // The client is leaving: answer what it sent, then close.
            conn.stopReading()
            conn.closeWhenIdle = true
            conn.closeIfIdle()
        }
    }

    func respond(_ conn: Connection, _ id: UInt64, _ error: MemoryError) {
        conn.append(FrameCodec.encodeResponse(id: id, error: error, payload: []))
    }

    func handleRequest(_ r: FrameDecoder.RequestView, on conn: Connection) {
        guard r.id != 0 else {
            conn.protocolViolation(.requestIDZero, "request id 0 is not allowed")
            return
        }
        guard conn.inFlight[r.id] == nil else {
            conn.protocolViolation(.duplicateRequestID, "request id \(r.id) is already in flight on this connection")
            return
        }
        if r.id > conn.lastRequestID { conn.lastRequestID = r.id }
        stats.callsTotal.add(1, ordering: .relaxed)
        guard let method = MemoryMethod(pathBytes: r.method) else {
            let path = String(decoding: r.method, as: UTF8.self)
            respond(conn, r.id, .call(.unimplemented, "unknown method \(Validation.show(path, max: 128))"))
            answeredOnLoop(nil, .unimplemented)
            return
        }
        if method == .ping {
            // Answered on the loop thread: no queue hop, and packed straight into the connection's output.
            // Its payload is an empty message, but bytes that are not a PingRequest still get the SPEC's
            // ValidationError.
            if r.payload.count > 0 {
                do throws(MemoryError) {
                    _ = try PayloadCodec.decodeRequest(.ping, r.payload)
                } catch {
                    respond(conn, r.id, error)
                    answeredOnLoop(.ping, error.code)
                    return
                }
            }
            PayloadCodec.withPingResponse(
                versionCString: versionCString, uptimeMs: (monotonicNanos() - startedAt) / 1_000_000
            ) { payload in
                conn.appendResponse(id: r.id, payload: payload)
            }
            answeredOnLoop(.ping, .ok)
            return
        }
        if method == .getMetrics { return answerGetMetrics(r, on: conn) }
        if method == .getMemoryItem, let cache, let id = PayloadCodec.plainGetMemoryItemID(r.payload),
            let payload = cache.lookup(id)
        {
            // A cache hit is answered here, like Ping: no queue hop, no worker.
            payload.withUnsafeBytes { conn.appendResponse(id: r.id, payload: $0) }
            answeredOnLoop(.getMemoryItem, .ok)
            return
        }
        let timeout = r.timeoutMs == 0 ? config.defaultTimeoutMs : min(r.timeoutMs, 86_400_000)
        let call = Call(
            connectionID: conn.id, requestID: r.id, method: method, payload: Array(r.payload), timeoutMs: timeout)
        guard workQueue.tryPush(call) else {
            respond(
                conn, r.id,
                .call(.resourceExhausted, "server overloaded: \(workQueue.capacity) calls queued (queue_capacity)"))
            answeredOnLoop(method, .resourceExhausted)
            return
        }
        conn.inFlight[r.id] = call
        stats.inFlight.add(1, ordering: .relaxed)
        addDeadline(call)
    }

    func handleCancel(_ id: UInt64, on conn: Connection) {
        guard let call = conn.inFlight[id] else { return }  // already answered: nothing to do
        if call.abandon() {
            conn.inFlight[id] = nil
            stats.inFlight.subtract(1, ordering: .relaxed)
            respond(conn, id, .call(.cancelled, "cancelled by the client before it started"))
            answered(call, .cancelled)
        }
        // A call already running finishes and is answered as usual.
    }
}
