import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A fault-injecting TCP proxy on 127.0.0.1 in front of the Firestore emulator, for tests of the Firestore
/// backend's timeouts, retries and circuit breaker.
///
/// memoryd speaks gRPC over HTTP/2 without TLS (h2c), all calls of a worker multiplexed on one kept-alive
/// connection, so the proxy reads HTTP/2 frames (not HPACK-decoded headers) in both directions and applies
/// the fault to each request as its HEADERS frame opens a new stream; kept-alive connections see mode
/// changes at once. A request that is faulted never reaches the emulator whole: its HEADERS frame is passed
/// on (the emulator's header decoder must stay in step with memoryd's encoder) and followed at once by a
/// RST_STREAM, its body is dropped, and anything the emulator still sends on that stream is dropped too.
/// To make dropping the emulator's header blocks safe, the proxy sets memoryd's SETTINGS_HEADER_TABLE_SIZE
/// to 0 on the way, so the emulator never indexes response headers; and it gives back the flow-control
/// credit of every dropped DATA frame with a connection WINDOW_UPDATE, so the connection never stalls.
/// Connections that do not start with the HTTP/2 preface (a plain HTTP/1 probe) are passed through as bytes.
public final class FaultProxy: @unchecked Sendable {
    public enum Mode: Sendable, Equatable {
        /// Forward both ways.
        case pass
        /// Forward each request after sleeping this long.
        case latency(ms: Int)
        /// Reset the TCP connection (RST) when a request arrives.
        case reset
        /// Take requests and never answer them, never close.
        case hang
        /// Answer every request as a server in that HTTP state would in gRPC: 503 → UNAVAILABLE (14),
        /// 429 → RESOURCE_EXHAUSTED (8), anything else INTERNAL (13), as a trailers-only answer.
        case http(Int)
    }

    public let port: Int
    private let upstreamPort: Int
    private var listenFD: Int32
    private let lock = NSLock()
    private var _mode: Mode = .pass
    private var _faulted = 0
    private var _requests = 0
    private var stopped = false

    public var mode: Mode {
        get {
            lock.lock()
            defer { lock.unlock() }
            return _mode
        }
        set {
            lock.lock()
            _mode = newValue
            lock.unlock()
        }
    }

    /// Requests answered by a fault (not forwarded), and requests seen in all.
    public var faulted: Int {
        lock.lock()
        defer { lock.unlock() }
        return _faulted
    }
    public var requests: Int {
        lock.lock()
        defer { lock.unlock() }
        return _requests
    }

    public var hostPort: String { "127.0.0.1:\(port)" }

    public init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && listen(fd, 128) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard rc else {
            close(fd)
            throw DaemonError("fault proxy: bind/listen failed: \(String(cString: strerror(errno)))")
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listenFD = fd
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    deinit { stop() }

    public func stop() {
        lock.lock()
        let fd = listenFD
        stopped = true
        listenFD = -1
        lock.unlock()
        if fd >= 0 {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        return a
    }

    private func acceptLoop() {
        while true {
            let fd = lock.withLock { listenFD }
            guard fd >= 0 else { return }
            let c = accept(fd, nil, nil)
            if c < 0 {
                if errno == EINTR { continue }
                return
            }
            let t = Thread { [self] in serve(c) }
            t.start()
        }
    }

    private func connectUpstream() -> Int32 {
        let u = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var a = Self.loopback(port: upstreamPort)
        let ok = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(u, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        if !ok {
            close(u)
            return -1
        }
        return u
    }

    private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// HTTP/2 frame types and flags the proxy looks at (RFC 9113 §6).
    enum Frame {
        static let data: UInt8 = 0, headers: UInt8 = 1, rstStream: UInt8 = 3, settings: UInt8 = 4
        static let windowUpdate: UInt8 = 8, continuation: UInt8 = 9
        static let endStream: UInt8 = 0x1, endHeaders: UInt8 = 0x4, ack: UInt8 = 0x1

        static func make(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
            let n = payload.count
            return [
                UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags,
                UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF),
            ] + payload
        }

        static func u32(_ v: UInt32) -> [UInt8] {
            [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
        }

        /// A connection-level WINDOW_UPDATE returning `n` bytes of credit.
        static func windowUpdate(_ n: Int) -> [UInt8] {
            make(type: windowUpdate, flags: 0, stream: 0, payload: u32(UInt32(n)))
        }

        /// RST_STREAM with CANCEL (8).
        static func cancel(_ stream: UInt32) -> [UInt8] {
            make(type: rstStream, flags: 0, stream: stream, payload: u32(8))
        }

        /// A gRPC trailers-only answer: `:status 200`, `content-type: application/grpc`, `grpc-status`,
        /// `grpc-message`, with END_STREAM. HPACK without the dynamic table or Huffman coding (RFC 7541
        /// §6.1: indexed `:status: 200` is static entry 8; §6.2.2: literals without indexing).
        static func grpcStatus(_ stream: UInt32, code: Int, message: String) -> [UInt8] {
            func string(_ s: String) -> [UInt8] { [UInt8(s.utf8.count)] + Array(s.utf8) }
            var block: [UInt8] = [0x88]
            block += [0x0F, 31 - 15] + string("application/grpc")  // name: static entry 31, content-type
            block += [0x00] + string("grpc-status") + string(String(code))
            block += [0x00] + string("grpc-message") + string(message)
            return make(type: headers, flags: endStream | endHeaders, stream: stream, payload: block)
        }

        /// A client SETTINGS frame with SETTINGS_HEADER_TABLE_SIZE (1) set to 0.
        static func withoutHeaderTable(_ payload: [UInt8], flags: UInt8) -> [UInt8] {
            var p = payload
            var found = false
            var i = 0
            while i + 6 <= p.count {
                if p[i] == 0 && p[i + 1] == 1 {
                    p.replaceSubrange((i + 2)..<(i + 6), with: [0, 0, 0, 0])
                    found = true
                }
                i += 6
            }
            if !found { p += [0, 1, 0, 0, 0, 0] }
            return make(type: settings, flags: flags, stream: 0, payload: p)
        }
    }

    /// What the proxy does with one stream that a fault took over.
    private enum Blackhole {
        case hang
        case answer(code: Int)
    }

    private func serve(_ client: Int32) {
        var upstream: Int32 = -1
        var buf = [UInt8](repeating: 0, count: 65536)
        defer {
            close(client)
            if upstream >= 0 { close(upstream) }
        }
        // Client bytes not yet handled (whole frames only), upstream bytes likewise.
        var fromClient: [UInt8] = []
        var fromUpstream: [UInt8] = []
        var http2: Bool?
        var lastStream: UInt32 = 0
        var blackholed: [UInt32: Blackhole] = [:]

        /// Handles whole frames from the client; false ends the connection.
        func clientFrames() -> Bool {
            var toUpstream: [UInt8] = []
            var toClient: [UInt8] = []
            var off = 0
            defer { fromClient.removeFirst(off) }
            while fromClient.count - off >= 9 {
                let len = Int(fromClient[off]) << 16 | Int(fromClient[off + 1]) << 8 | Int(fromClient[off + 2])
                guard fromClient.count - off >= 9 + len else { break }
                let type = fromClient[off + 3], flags = fromClient[off + 4]
                let stream =
                    UInt32(fromClient[off + 5] & 0x7F) << 24 | UInt32(fromClient[off + 6]) << 16
                    | UInt32(fromClient[off + 7]) << 8 | UInt32(fromClient[off + 8])
                let frame = Array(fromClient[off..<(off + 9 + len)])
                off += 9 + len
                if type == Frame.settings && stream == 0 && flags & Frame.ack == 0 {
                    toUpstream += Frame.withoutHeaderTable(Array(frame[9...]), flags: flags)
                    continue
                }
                if type == Frame.headers && stream > lastStream {
                    // A new request.
                    lastStream = stream
                    let mode = lock.withLock { () -> Mode in
                        _requests += 1
                        switch _mode {
                        case .pass, .latency: break
                        default: _faulted += 1
                        }
                        return _mode
                    }
                    switch mode {
                    case .pass:
                        break
                    case .latency(let ms):
                        guard sendAll(upstream, toUpstream) else { return false }
                        toUpstream = []
                        usleep(UInt32(ms) * 1000)
                    case .reset:
                        var l = linger(l_onoff: 1, l_linger: 0)
                        setsockopt(client, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
                        return false
                    case .hang:
                        blackholed[stream] = .hang
                    case .http(let status):
                        blackholed[stream] = .answer(code: status == 503 ? 14 : status == 429 ? 8 : 13)
                    }
                }
                guard let fault = blackholed[stream] else {
                    toUpstream += frame
                    continue
                }
                switch type {
                case Frame.headers, Frame.continuation:
                    // The header block goes on (HPACK state), then the stream is cancelled before any body.
                    toUpstream += frame
                    if flags & Frame.endHeaders != 0 {
                        toUpstream += Frame.cancel(stream)
                        if case .answer(let code) = fault {
                            toClient += Frame.grpcStatus(stream, code: code, message: "injected by FaultProxy")
                        }
                    }
                case Frame.data:
                    if len > 0 { toClient += Frame.windowUpdate(len) }
                default:
                    break  // RST_STREAM, WINDOW_UPDATE, PRIORITY of a stream the emulator no longer has
                }
            }
            return sendAll(upstream, toUpstream) && sendAll(client, toClient)
        }

        /// Handles whole frames from the emulator; false ends the connection.
        func upstreamFrames() -> Bool {
            var toClient: [UInt8] = []
            var toUpstream: [UInt8] = []
            var off = 0
            defer { fromUpstream.removeFirst(off) }
            while fromUpstream.count - off >= 9 {
                let len = Int(fromUpstream[off]) << 16 | Int(fromUpstream[off + 1]) << 8 | Int(fromUpstream[off + 2])
                guard fromUpstream.count - off >= 9 + len else { break }
                let type = fromUpstream[off + 3]
                let stream =
                    UInt32(fromUpstream[off + 5] & 0x7F) << 24 | UInt32(fromUpstream[off + 6]) << 16
                    | UInt32(fromUpstream[off + 7]) << 8 | UInt32(fromUpstream[off + 8])
                let frame = fromUpstream[off..<(off + 9 + len)]
                off += 9 + len
                if stream != 0, blackholed[stream] != nil {
                    if type == Frame.data && len > 0 { toUpstream += Frame.windowUpdate(len) }
                    continue
                }
                toClient += frame
            }
            return sendAll(client, toClient) && sendAll(upstream, toUpstream)
        }

        while !lock.withLock({ stopped }) {
            var fds = [
                pollfd(fd: client, events: Int16(POLLIN), revents: 0),
                pollfd(fd: upstream, events: Int16(POLLIN), revents: 0),
            ]
            let rc = poll(&fds, upstream >= 0 ? 2 : 1, 200)
            if rc < 0 && errno == EINTR { continue }
            if rc <= 0 { continue }
            if upstream >= 0, fds[1].revents != 0 {
                let n = recv(upstream, &buf, buf.count, 0)
                if n <= 0 { return }
                if http2 == true {
                    fromUpstream += buf[0..<n]
                    guard upstreamFrames() else { return }
                } else if !sendAll(client, Array(buf[0..<n])) {
                    return
                }
            }
            guard fds[0].revents != 0 else { continue }
            let n = recv(client, &buf, buf.count, 0)
            if n <= 0 { return }
            fromClient += buf[0..<n]
            if http2 == nil {
                // HTTP/2 with prior knowledge starts with the preface; anything else is passed through.
                let k = min(fromClient.count, Self.preface.count)
                if Array(fromClient[0..<k]) != Array(Self.preface[0..<k]) {
                    http2 = false
                } else if fromClient.count >= Self.preface.count {
                    http2 = true
                } else {
                    continue
                }
                upstream = connectUpstream()
                guard upstream >= 0 else { return }
                if http2 == true {
                    guard sendAll(upstream, Self.preface) else { return }
                    fromClient.removeFirst(Self.preface.count)
                }
            }
            if http2 == true {
                guard clientFrames() else { return }
            } else {
                guard sendAll(upstream, fromClient) else { return }
                fromClient = []
            }
        }
    }
}
