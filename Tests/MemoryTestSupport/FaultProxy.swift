import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A fault-injecting TCP proxy on 127.0.0.1 in front of an HTTP/1.1 server (the Firestore emulator), for
/// tests of the Firestore backend's timeouts, retries and circuit breaker. The fault applies to each HTTP
/// request as it arrives, so kept-alive connections see mode changes at once.
public final class FaultProxy: @unchecked Sendable {
    public enum Mode: Sendable, Equatable {
        /// Forward both ways.
        case pass
        /// Forward after sleeping this long per request.
        case latency(ms: Int)
        /// Reset the connection (RST) when a request arrives.
        case reset
        /// Read requests and never answer, never close.
        case hang
        /// Answer every request with this HTTP status and a Google-style error body.
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

    /// The length of the first complete HTTP request in `buf`, or nil while it is incomplete.
    private static func requestLength(_ buf: [UInt8]) -> Int? {
        guard buf.count >= 4 else { return nil }
        var headerEnd: Int?
        for i in 0...(buf.count - 4) where buf[i] == 13 && buf[i + 1] == 10 && buf[i + 2] == 13 && buf[i + 3] == 10 {
            headerEnd = i + 4
            break
        }
        guard let headerEnd else { return nil }
        let head = String(decoding: buf[0..<headerEnd], as: UTF8.self).lowercased()
        var body = 0
        // (Split with Foundation: in Swift "\r\n" is one Character.)
        for line in head.components(separatedBy: "\r\n") where line.hasPrefix("content-length:") {
            body = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return buf.count >= headerEnd + body ? headerEnd + body : nil
    }

    private func serve(_ client: Int32) {
        var upstream: Int32 = -1
        var pending: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        defer {
            close(client)
            if upstream >= 0 { close(upstream) }
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
                if n <= 0 {
                    close(upstream)
                    upstream = -1
                } else if !sendAll(client, Array(buf[0..<n])) {
                    return
                }
            }
            guard fds[0].revents != 0 else { continue }
            let n = recv(client, &buf, buf.count, 0)
            if n <= 0 { return }
            pending += buf[0..<n]
            // Whole requests only: a fault answers (or drops) exactly one request.
            while let len = Self.requestLength(pending) {
                let request = Array(pending[0..<len])
                pending.removeFirst(len)
                let mode = lock.withLock { () -> Mode in
                    _requests += 1
                    switch _mode {
                    case .pass, .latency: break
                    default: _faulted += 1
                    }
                    return _mode
                }
                switch mode {
                case .pass, .latency:
                    if case .latency(let ms) = mode { usleep(UInt32(ms) * 1000) }
                    if upstream < 0 { upstream = connectUpstream() }
                    guard upstream >= 0, sendAll(upstream, request) else { return }
                case .reset:
                    var l = linger(l_onoff: 1, l_linger: 0)
                    setsockopt(client, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
                    return
                case .hang:
                    continue
                case .http(let status):
                    let name = status == 429 ? "RESOURCE_EXHAUSTED" : status == 503 ? "UNAVAILABLE" : "INTERNAL"
                    let body =
                        "{\"error\":{\"code\":\(status),\"status\":\"\(name)\",\"message\":\"injected by FaultProxy\"}}"
                    let reply =
                        "HTTP/1.1 \(status) Injected\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                    guard sendAll(client, Array(reply.utf8)) else { return }
                }
            }
        }
    }
}
