import CLibUV
import Logging
import MemoryDomain
import MemoryWire

#if canImport(Glibc)
import Glibc
#endif

/// What a connection needs from the server that owns it — nothing more of the server is its business. Every
/// member is called on the loop thread.
protocol ConnectionOwner: AnyObject {
    /// Limits every connection obeys; they may change on SIGHUP.
    var connectionLimits: ConnectionLimits { get }
    /// The loop's one read buffer: libuv reads into it, and the bytes are used up before the callback returns.
    var readBuffer: UnsafeMutableRawBufferPointer { get }
    /// A whole frame arrived on `connection` (valid only during the call).
    func connection(_ connection: Connection, received frame: UnsafeRawBufferPointer)
    /// `connection` queued output: write it at the end of this loop iteration.
    func connectionHasOutput(_ connection: Connection)
    /// Write what every connection queued, now (after a read).
    func flushOutput()
    /// `connection` broke the protocol and is being closed.
    func connectionViolatedProtocol(_ connection: Connection, kind: ProtocolViolation)
    /// `connection` dropped `count` calls it had in flight (it is closing).
    func connection(_ connection: Connection, abandonedCalls count: Int)
    /// `connection`'s handle is closed: forget it.
    func connectionDidClose(_ connection: Connection)
}

struct ConnectionLimits {
    var maxFrameBytes: Int
    var maxOutputBytes: Int
    var maxInFlight: Int
}

/// One client connection, owned by the loop thread. Reads into a fixed buffer, reassembles frames, hands
/// calls to the server, and batches responses into one write per loop iteration.
final class Connection {
    let id: UInt64
    let handle: UnsafeMutablePointer<uv_pipe_t>
    unowned let owner: ConnectionOwner
    let peer: PeerCredentials
    var logger: Logger

    var reassembler: FrameReassembler
    /// Bytes read but not yet fed, kept while the connection is at its in-flight limit.
    var pendingInput: [UInt8] = []
    var inFlight: [UInt64: Call] = [:]
    var lastRequestID: UInt64 = 0

    /// Output not yet handed to libuv, and bytes libuv is still writing.
    var output: [UInt8] = []
    /// An output buffer up to this size is kept between writes (Pings are packed into it without allocating);
    /// a larger one, left by a large response, is released so that an idle connection holds little.
    static let keptOutputBytes = 8192
    var writing = 0
    var reading = false
    var closing = false
    /// Close once in-flight calls are answered and output is flushed (after GoAway or the peer's EOF).
    var closeWhenIdle = false
    var goAwaySent = false
    /// Listed in the server's set of connections to flush at the end of this loop iteration.
    var isDirty = false

    init(
        id: UInt64, handle: UnsafeMutablePointer<uv_pipe_t>, owner: ConnectionOwner, peer: PeerCredentials,
        logger: Logger
    ) {
        self.id = id
        self.handle = handle
        self.owner = owner
        self.peer = peer
        self.logger = logger
        self.logger[metadataKey: "conn.id"] = "\(id)"
        self.reassembler = FrameReassembler(maxFrameBytes: owner.connectionLimits.maxFrameBytes)
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { cuv_stream(handle) }

    // MARK: - Reading

    func startReading() {
        guard !reading, !closing, !closeWhenIdle else { return }
        reading = true
        let rc = uv_read_start(
            stream,
            { handle, suggested, buf in
                let conn = Unmanaged<Connection>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
                let b = conn.owner.readBuffer
                buf!.pointee = uv_buf_t(base: b.baseAddress!.assumingMemoryBound(to: CChar.self), len: b.count)
            },
            { stream, nread, buf in
                let conn = Unmanaged<Connection>.fromOpaque(stream!.pointee.data).takeUnretainedValue()
                if nread > 0 {
                    conn.didRead(UnsafeRawBufferPointer(start: buf!.pointee.base, count: nread))
                } else if nread < 0 {
                    conn.didReachEnd(Int32(nread))
                }
            })
        do {
            try uvCheck(rc, "uv_read_start")
        } catch {
            logger.debug("cannot read", metadata: ["error": "\(error)"])
            reading = false
            close()
        }
    }

    func stopReading() {
        guard reading else { return }
        reading = false
        uvMust(uv_read_stop(stream), "uv_read_stop")
    }

    private func didReachEnd(_ status: Int32) {
        stopReading()
        if status != UV_EOF.rawValue {
            logger.debug("read failed", metadata: ["error": "\(String(cString: uv_strerror(status)))"])
            close()
            return
        }
        if reassembler.isMidFrame { logger.debug("peer closed in the middle of a frame") }
        // A peer that half-closes still gets the answers to what it sent.
        closeWhenIdle = true
        closeIfIdle()
    }

    private func didRead(_ bytes: UnsafeRawBufferPointer) {
        if !pendingInput.isEmpty {
            pendingInput.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
            return
        }
        feed(bytes)
        owner.flushOutput()
    }

    /// Feeds bytes until they run out or the connection reaches its in-flight limit; keeps the rest.
    private func feed(_ bytes: UnsafeRawBufferPointer) {
        var consumed = 0
        do {
            consumed = try reassembler.feed(bytes) { body in
                self.owner.connection(self, received: body)
                return !self.closing && !self.goAwaySent
                    && self.inFlight.count < self.owner.connectionLimits.maxInFlight
            }
        } catch let failure as FrameReassembler.Failure {
            protocolViolation(
                ProtocolViolation(failure), "\(failure) (max_frame_bytes is \(owner.connectionLimits.maxFrameBytes))")
            return
        } catch {
            protocolViolation(.undecodableFrame, "\(error)")
            return
        }
        if consumed < bytes.count && !closing && !goAwaySent {
            pendingInput.append(
                contentsOf: UnsafeRawBufferPointer(rebasing: bytes[consumed...]).assumingMemoryBound(to: UInt8.self))
            stopReading()
        }
    }

    /// Called when an in-flight call finishes: resume input kept back at the limit.
    func resumeIfBelowLimit() {
        guard !closing, !goAwaySent, inFlight.count < owner.connectionLimits.maxInFlight else { return }
        if !pendingInput.isEmpty {
            let pending = pendingInput
            pendingInput = []
            pending.withUnsafeBytes { feed($0) }
            if !pendingInput.isEmpty { return }
        }
        if !closeWhenIdle { startReading() }
    }

    // MARK: - Protocol errors and GoAway

    /// Sends a GoAway with the reason and closes once it is written. Other connections are not affected.
    func protocolViolation(_ kind: ProtocolViolation, _ message: String) {
        owner.connectionViolatedProtocol(self, kind: kind)
        logger.notice(
            "protocol violation, closing connection", metadata: ["reason": "\(message)", "peer.pid": "\(peer.pid)"])
        goAway(kind.code, message)
        // Calls already accepted are abandoned: the peer broke the protocol.
        abandonCallsInFlight()
        pendingInput = []
        closeIfIdle()
    }

    /// Drops every call in flight: queued ones will not run, running ones will not be answered. The owner
    /// hears of it (its count of calls in flight goes down).
    private func abandonCallsInFlight() {
        guard !inFlight.isEmpty else { return }
        for (_, call) in inFlight { call.abandon() }
        owner.connection(self, abandonedCalls: inFlight.count)
        inFlight.removeAll()
    }

    /// Sends GoAway(last_request_id) once and stops reading: calls after that id were not processed.
    func goAway(_ code: StatusCode, _ message: String) {
        guard !goAwaySent, !closing else { return }
        goAwaySent = true
        stopReading()
        closeWhenIdle = true
        append(FrameCodec.encode(.goAway(GoAwayFrame(code: code, message: message, lastRequestID: lastRequestID))))
    }

    // MARK: - Writing

    /// Queues an encoded frame. A peer that lets its unread output pass the limit is disconnected.
    func append(_ frame: [UInt8]) {
        guard hasRoom(for: frame.count) else { return }
        if output.isEmpty && writing == 0 {
            output = frame
        } else {
            output.append(contentsOf: frame)
        }
        owner.connectionHasOutput(self)
    }

    /// False when the connection is closing, or when `bytes` more would pass `max_output_bytes`: then the
    /// peer is not reading its responses and is disconnected.
    private func hasRoom(for bytes: Int) -> Bool {
        guard !closing else { return false }
        guard output.count + writing + bytes <= owner.connectionLimits.maxOutputBytes else {
            logger.warning(
                "client is not reading its responses; disconnecting",
                metadata: ["pending_bytes": "\(output.count + writing)", "peer.pid": "\(peer.pid)"])
            close()
            return false
        }
        return true
    }

    /// Packs an OK Response straight into the output buffer (the loop thread's Ping: no allocation).
    func appendResponse(id: UInt64, payload: UnsafeRawBufferPointer) {
        guard hasRoom(for: payload.count + 32) else { return }
        FrameCodec.appendResponse(id: id, payload: payload, to: &output)
        owner.connectionHasOutput(self)
    }

    /// Writes what is queued: first synchronously (`uv_try_write`), then the rest through `uv_write`.
    func flush() {
        guard !closing, writing == 0, !output.isEmpty else {
            closeIfIdle()
            return
        }
        var written = 0
        output.withUnsafeMutableBytes { raw in
            var buf = uv_buf_t(base: raw.baseAddress!.assumingMemoryBound(to: CChar.self), len: raw.count)
            let n = uv_try_write(stream, &buf, 1)
            if n > 0 { written = Int(n) } else if n < 0 && n != UV_EAGAIN.rawValue { written = -1 }
        }
        if written < 0 {
            close()
            return
        }
        if written == output.count {
            output.removeAll(keepingCapacity: output.capacity <= Self.keptOutputBytes)
            closeIfIdle()
            return
        }
        // Hand the rest to libuv in a buffer it owns until the write callback.
        let rest = output.count - written
        let mem = malloc(rest)!
        output.withUnsafeBytes { mem.copyMemory(from: $0.baseAddress! + written, byteCount: rest) }
        output.removeAll(keepingCapacity: output.capacity <= Self.keptOutputBytes)
        writing = rest
        let req = uvAllocate(uv_write_t.self)
        req.pointee.data = mem
        var buf = uv_buf_t(base: mem.assumingMemoryBound(to: CChar.self), len: rest)
        let rc = uv_write(req, stream, &buf, 1) { req, status in
            let mem = req!.pointee.data
            let conn = Unmanaged<Connection>.fromOpaque(req!.pointee.handle.pointee.data).takeUnretainedValue()
            free(mem)
            req!.deallocate()
            conn.writing = 0
            if status < 0 {
                conn.close()
            } else {
                conn.flush()
            }
        }
        do {
            try uvCheck(rc, "uv_write")
        } catch {
            logger.debug("write failed", metadata: ["error": "\(error)"])
            free(mem)
            req.deallocate()
            writing = 0
            close()
        }
    }

    // MARK: - Closing

    func closeIfIdle() {
        guard closeWhenIdle, !closing, inFlight.isEmpty, output.isEmpty, writing == 0 else { return }
        close()
    }

    /// Closes now. In-flight calls are abandoned; the handle is freed in its close callback.
    func close() {
        guard !closing else { return }
        closing = true
        stopReading()
        abandonCallsInFlight()
        output = []
        uv_close(cuv_handle(handle)) { h in
            let conn = Unmanaged<Connection>.fromOpaque(h!.pointee.data).takeUnretainedValue()
            conn.owner.connectionDidClose(conn)
            h!.deallocate()
        }
    }
}

/// The peer's credentials, read with SO_PEERCRED (and SO_PEERGROUPS) at accept: the kernel's record of
/// the process that called connect(), which the peer cannot forge.
struct PeerCredentials: Sendable {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32
    /// Supplementary groups; read only when `allowed_gids` is set.
    var groups: [UInt32] = []
    /// False when SO_PEERCRED failed: then uid/gid are meaningless and an allow-list refuses the peer.
    var known = true
}
