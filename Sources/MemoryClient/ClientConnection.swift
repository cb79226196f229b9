import MemoryDomain
import MemoryPosix
import MemoryWire

#if canImport(Glibc)
import Glibc
#endif

/// A blocking connection to memoryd, for one thread at a time. Many calls can be in flight: `start` sends a
/// request and returns its id, `wait` reads frames until that id's response arrives (keeping the others).
public final class ClientConnection {
    public let socketPath: String
    private var fd: Int32
    private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
    private var readStart = 0
    private var readEnd = 0
    private var nextID: UInt64 = 1
    private var arrived: [UInt64: ResponseFrame] = [:]
    /// The GoAway the server sent, if any: calls with ids above `lastRequestID` were not processed.
    public private(set) var goAway: GoAwayFrame?
    public private(set) var isClosed = false
    public var maxFrameBytes = 64 * 1024 * 1024

    /// Connects to the daemon's socket. Throws `UNAVAILABLE` (ERROR_TYPE_UNSPECIFIED) when nothing listens.
    public init(socketPath: String) throws(MemoryError) {
        self.socketPath = socketPath
        switch UnixSocket.connect(socketPath) {
        case .success(let connected):
            fd = connected
        case .failure(let e):
            // EACCES: the socket's (or its directory's) permissions keep this user out.
            throw .call(
                e.errno == EACCES ? .permissionDenied : .unavailable,
                "cannot connect to memoryd at \(socketPath): \(String(cString: strerror(e.errno)))")
        }
    }

    deinit { close() }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    /// The file descriptor, for tests that need to misbehave at the byte level.
    public var fileDescriptor: Int32 { fd }

    // MARK: - Frames

    /// Writes raw bytes (tests use this to send malformed frames).
    public func writeRaw(_ bytes: [UInt8]) throws(MemoryError) {
        do {
            try bytes.withUnsafeBytes { try writeAll(fd, $0, socket: true) }
        } catch {
            throw .call(.unavailable, "write to memoryd failed: \(error)")
        }
    }

    public func send(_ frame: Frame) throws(MemoryError) {
        do {
            try writeRaw(FrameCodec.encode(frame))
        } catch {
            // The server may have refused the connection (GoAway, then close) before this write: its reason
            // is still in the receive buffer and says more than EPIPE.
            if goAway == nil, case .goAway(let g)? = try? readFrame(timeoutMs: 0) { goAway = g }
            if let g = goAway { throw Self.error(for: g, callID: nextID) }
            throw error
        }
    }

    /// The error of a call the server did not process because of GoAway `g`: its own code when it refused
    /// the connection (PERMISSION_DENIED, RESOURCE_EXHAUSTED, a protocol violation), else UNAVAILABLE,
    /// safe to retry.
    static func error(for g: GoAwayFrame, callID: UInt64) -> MemoryError {
        if g.code != .unavailable && g.code != .ok {
            return .call(g.code, "memoryd closed the connection: \(g.message)")
        }
        return MemoryError(
            code: .unavailable, type: .unspecified,
            message: "memoryd is going away (\(g.message)); call \(callID) was not processed and is safe to retry",
            details: ["retryable": "true"])
    }

    /// Reads the next frame. `timeoutMs` nil waits forever. Throws UNAVAILABLE when the server closed.
    public func readFrame(timeoutMs: Int? = nil) throws(MemoryError) -> Frame {
        let header = try readExactly(4, timeoutMs: timeoutMs)
        let n = Int(header.withUnsafeBytes { LengthPrefix.read($0) })
        guard n > 0, n <= maxFrameBytes else { throw .call(.internal, "server sent a frame of \(n) bytes") }
        let body = try readExactly(n, timeoutMs: timeoutMs)
        do {
            return try FrameCodec.decode(body)
        } catch {
            throw .call(.internal, "server sent an undecodable frame: \(error)")
        }
    }

    /// Reads until the peer closes; returns the bytes read (tests check that the server closed).
    public func readUntilClosed(timeoutMs: Int) throws(MemoryError) -> [UInt8] {
        var out: [UInt8] = Array(readBuffer[readStart..<readEnd])
        readStart = 0
        readEnd = 0
        while true {
            guard try waitReadable(timeoutMs) else {
                throw .call(.deadlineExceeded, "server did not close within \(timeoutMs) ms")
            }
            let n = (try? receive()) ?? 0
            if n == 0 { return out }
            out.append(contentsOf: readBuffer[0..<n])
        }
    }

    private func waitReadable(_ timeoutMs: Int?) throws(MemoryError) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        do {
            return try syscall("poll") { poll(&p, 1, Int32(timeoutMs ?? -1)) } > 0
        } catch {
            throw .call(.unavailable, "\(error)")
        }
    }

    /// One `recv` into the read buffer: the byte count, 0 at end of stream.
    private func receive() throws(SystemError) -> Int {
        try syscall("recv") { readBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) } }
    }

    private func readExactly(_ count: Int, timeoutMs: Int?) throws(MemoryError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            if readStart == readEnd {
                if let t = timeoutMs, !(try waitReadable(t)) {
                    throw .call(.deadlineExceeded, "no answer from memoryd within \(t) ms")
                }
                let n: Int
                do { n = try receive() } catch { throw .call(.unavailable, "read from memoryd failed: \(error)") }
                if n == 0 {
                    isClosed = true
                    throw .call(
                        .unavailable,
                        goAway.map { "memoryd closed the connection after GoAway: \($0.message)" }
                            ?? "memoryd closed the connection")
                }
                readStart = 0
                readEnd = n
            }
            let take = min(count - out.count, readEnd - readStart)
            out.append(contentsOf: readBuffer[readStart..<(readStart + take)])
            readStart += take
        }
        return out
    }

    // MARK: - Calls

    /// Sends a request and returns its id without waiting.
    @discardableResult
    public func start(_ request: MethodRequest, timeoutMs: UInt64 = 0, id: UInt64? = nil) throws(MemoryError) -> UInt64
    {
        if let field = request.fieldWithNUL {
            throw .validation("\(field) contains a NUL byte, which the protocol cannot carry")
        }
        let callID = id ?? nextID
        nextID = max(nextID, callID) + 1
        try send(
            .request(
                RequestFrame(
                    id: callID, method: request.method.path, timeoutMs: timeoutMs,
                    payload: PayloadCodec.encodeRequest(request))))
        return callID
    }

    /// Waits for the response with this id; responses to other ids that arrive first are kept.
    public func waitResponse(_ id: UInt64, timeoutMs: Int? = nil) throws(MemoryError) -> ResponseFrame {
        if let r = arrived.removeValue(forKey: id) { return r }
        while true {
            let frame = try readFrame(timeoutMs: timeoutMs)
            switch frame {
            case .response(let r):
                if r.id == id { return r }
                arrived[r.id] = r
            case .goAway(let g):
                goAway = g
                if id > g.lastRequestID { throw Self.error(for: g, callID: id) }
            default:
                continue
            }
        }
    }

    /// Waits for the response to `id` and decodes it for `method`; a non-OK status is thrown.
    public func wait(_ id: UInt64, method: MemoryMethod, timeoutMs: Int? = nil) throws(MemoryError) -> MethodResponse {
        let r = try waitResponse(id, timeoutMs: timeoutMs)
        if let error = r.error { throw error }
        return try PayloadCodec.decodeResponse(method, r.payload)
    }

    /// One call, start to finish.
    public func call(_ request: MethodRequest, timeoutMs: UInt64 = 0) throws(MemoryError) -> MethodResponse {
        let id = try start(request, timeoutMs: timeoutMs)
        // Wait a little past the server's deadline so that its DEADLINE_EXCEEDED is what we report.
        return try wait(id, method: request.method, timeoutMs: timeoutMs == 0 ? nil : Int(timeoutMs) + 5000)
    }
}
