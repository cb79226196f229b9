import MemoryDomain
import MemoryPosix
import MemoryWire

#if canImport(Glibc)
import Glibc
#endif

/// A lean, single-threaded load generator for memoryd, shaped like redis-benchmark so that the two are
/// measured the same way: `connections` sockets on one poll set, each sending `depth` requests in one write
/// (the ids 1...depth, pre-encoded once), then waiting for all of their responses before the next batch.
/// Each response's latency is the time from its batch's write to its arrival (redis-benchmark's `-P`).
/// Responses are checked cheaply (a Response frame without a Status); the first of each connection is
/// decoded in full.
final class LoadGenerator {
    struct Result {
        var calls: Int
        var errors: Int
        var seconds: Double
        var latencies: Percentiles
        var callsPerSecond: Double { Double(calls) / seconds }
    }

    private final class Conn {
        let fd: Int32
        var buffer: [UInt8]
        var filled = 0
        var pending = 0
        var sentAt: UInt64 = 0
        var checkedFirst = false
        init(fd: Int32) {
            self.fd = fd
            buffer = [UInt8](repeating: 0, count: 256 * 1024)
        }
    }

    let socketPath: String
    let batch: [UInt8]
    let depth: Int
    /// Speaks RESP (Redis) instead of memoryd's frames: the same client measures both servers.
    let resp: Bool
    private var conns: [Conn] = []
    private var pollSet: [pollfd] = []

    init(socketPath: String, request: MethodRequest, connections: Int, depth: Int) throws {
        self.socketPath = socketPath
        self.depth = depth
        resp = false
        let payload = PayloadCodec.encodeRequest(request)
        var b: [UInt8] = []
        for id in 1...depth {
            b += FrameCodec.encode(
                .request(RequestFrame(id: UInt64(id), method: request.method.path, payload: payload)))
        }
        batch = b
        try connectAll(connections)
    }

    /// A RESP load generator: `command` (e.g. ["GET", "key"]) sent `depth` times per batch.
    init(redisSocketPath: String, command: [String], connections: Int, depth: Int) throws {
        socketPath = redisSocketPath
        self.depth = depth
        resp = true
        var one = "*\(command.count)\r\n"
        for c in command { one += "$\(c.utf8.count)\r\n\(c)\r\n" }
        batch = Array(String(repeating: one, count: depth).utf8)
        try connectAll(connections)
    }

    private func connectAll(_ connections: Int) throws {
        for _ in 0..<connections {
            let fd = try Self.connectUnix(socketPath)
            conns.append(Conn(fd: fd))
            pollSet.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
        }
    }

    deinit {
        for c in conns { close(c.fd) }
    }

    static func connectUnix(_ path: String) throws -> Int32 {
        switch UnixSocket.connect(path) {
        case .success(let fd): return fd
        case .failure(let e): throw BenchError("\(e)")
        }
    }

    private func send(_ c: Conn) {
        c.sentAt = nowNanos()
        c.pending = depth
        batch.withUnsafeBytes { raw in
            do { try writeAll(c.fd, raw, socket: true) } catch { fatalError("\(error)") }
        }
    }

    /// Runs `calls` calls (rounded up to whole batches) and returns the figures; `record` false = warm-up.
    func run(calls: Int, record: Bool = true) -> Result {
        var latencies: [UInt64] = []
        if record { latencies.reserveCapacity(calls + depth * conns.count) }
        var started = 0, done = 0, errors = 0
        let t0 = nowNanos()
        for c in conns where started < calls {
            send(c)
            started += depth
        }
        while done < started {
            let n: Int32
            do { n = try syscall("poll") { poll(&pollSet, nfds_t(pollSet.count), 10_000) } } catch {
                fatalError("\(error)")
            }
            if n == 0 { fatalError("no response from memoryd within 10 s (\(done)/\(started) done)") }
            for e in 0..<pollSet.count where pollSet[e].revents != 0 {
                let c = conns[e]
                let r: Int
                do {
                    r = try syscall("recv") {
                        c.buffer.withUnsafeMutableBytes {
                            recv(c.fd, $0.baseAddress! + c.filled, $0.count - c.filled, 0)
                        }
                    }
                } catch { fatalError("\(error)") }
                if r == 0 { fatalError("memoryd closed the connection") }
                let now = nowNanos()
                c.filled += r
                // Take every whole frame in the buffer.
                var i = 0
                var got = 0
                c.buffer.withUnsafeBytes { b in
                    while c.filled - i >= (self.resp ? 1 : 4) {
                        if self.resp {
                            guard let (next, ok) = Self.respReply(b, i, c.filled) else { break }
                            if !ok { errors += 1 }
                            i = next
                            got += 1
                            continue
                        }
                        let len = Int(LengthPrefix.read(UnsafeRawBufferPointer(rebasing: b[i..<(i + 4)])))
                        guard c.filled - i - 4 >= len else { break }
                        let body = UnsafeRawBufferPointer(rebasing: b[(i + 4)..<(i + 4 + len)])
                        if !Self.isOKResponse(body) { errors += 1 }
                        if !c.checkedFirst {
                            c.checkedFirst = true
                            if case .response(let resp)? = try? FrameCodec.decode(body), resp.error == nil {
                            } else {
                                errors += 1
                            }
                        }
                        i += 4 + len
                        got += 1
                    }
                }
                if i > 0 {
                    if i < c.filled {
                        c.buffer.withUnsafeMutableBytes { b in
                            b.baseAddress!.copyMemory(from: b.baseAddress! + i, byteCount: c.filled - i)
                        }
                    }
                    c.filled -= i
                }
                if got > 0 {
                    if record { for _ in 0..<got { latencies.append(now - c.sentAt) } }
                    done += got
                    c.pending -= got
                    if c.pending == 0 && started < calls {
                        send(c)
                        started += depth
                    }
                }
            }
        }
        let seconds = Double(nowNanos() - t0) / 1e9
        return Result(calls: done, errors: errors, seconds: seconds, latencies: Percentiles(latencies))
    }

    /// One RESP reply starting at `i` (simple string, error, integer, or bulk string): the index after it and
    /// whether it was not an error; nil when it is not complete yet.
    static func respReply(_ b: UnsafeRawBufferPointer, _ i: Int, _ end: Int) -> (Int, Bool)? {
        var j = i
        while j + 1 < end && !(b[j] == 13 && b[j + 1] == 10) { j += 1 }
        guard j + 1 < end else { return nil }
        let kind = b[i]
        if kind != UInt8(ascii: "$") { return (j + 2, kind != UInt8(ascii: "-")) }
        var n = 0, neg = false
        for k in (i + 1)..<j { if b[k] == UInt8(ascii: "-") { neg = true } else { n = n * 10 + Int(b[k] - 48) } }
        if neg { return (j + 2, true) }  // nil bulk string
        let after = j + 2 + n + 2
        return after <= end ? (after, true) : nil
    }

    /// A Response frame (`Frame.response`, field 2) whose Response has no Status (field 2) set.
    static func isOKResponse(_ body: UnsafeRawBufferPointer) -> Bool {
        guard body.count >= 2, body[0] == 0x12 else { return false }
        var i = 1
        guard let (_, a) = varint(body, i) else { return false }
        i = a
        while i < body.count {
            guard let (key, k) = varint(body, i) else { return false }
            i = k
            let field = key >> 3, wire = key & 7
            if field == 2 { return false }
            switch wire {
            case 0:
                guard let (_, v) = varint(body, i) else { return false }
                i = v
            case 2:
                guard let (len, l) = varint(body, i) else { return false }
                i = l + Int(len)
            default: return false
            }
        }
        return true
    }

    @inline(__always)
    static func varint(_ b: UnsafeRawBufferPointer, _ start: Int) -> (UInt64, Int)? {
        var v: UInt64 = 0, shift: UInt64 = 0, i = start
        while i < b.count {
            let x = b[i]
            v |= UInt64(x & 0x7f) << shift
            i += 1
            if x & 0x80 == 0 { return (v, i) }
            shift += 7
            if shift > 63 { return nil }
        }
        return nil
    }
}
