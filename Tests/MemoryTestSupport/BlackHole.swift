import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A TCP listener on 127.0.0.1 that accepts connections, reads what arrives and never answers nor closes:
/// a backend that hangs. memoryd's Firestore backend pointed at it (`firestore.emulator_host`) keeps a
/// worker inside its request until the request's timeout, whatever the protocol (HTTP/1.1 or gRPC), which is
/// how tests get a worker that is stuck for as long as they need without depending on speed.
public final class BlackHole: @unchecked Sendable {  // mutable state is guarded by `lock`
    public let port: Int
    private let listenFD: Int32
    private let lock = NSCondition()
    private var received = 0
    private var accepted: [Int32] = []
    private var stopped = false

    public var hostPort: String { "127.0.0.1:\(port)" }

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && listen(fd, 128) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard ok else {
            close(fd)
            throw DaemonError("black hole: bind/listen failed: \(String(cString: strerror(errno)))")
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listenFD = fd
        Thread { [self] in serve() }.start()
    }

    deinit { stop() }

    /// Bytes received so far on every connection.
    public var bytesReceived: Int {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    /// Waits until at least `bytes` more than `after` have arrived (a request is inside the "backend").
    public func waitForBytes(after: Int = 0, timeout: Double = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        while received <= after {
            guard lock.wait(until: deadline) else {
                throw DaemonError("black hole: no request arrived within \(timeout) s")
            }
        }
    }

    public func stop() {
        lock.lock()
        let already = stopped
        stopped = true
        let fds = accepted
        accepted = []
        lock.unlock()
        guard !already else { return }
        shutdown(listenFD, Int32(SHUT_RDWR))
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func serve() {
        var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            lock.lock()
            let done = stopped
            lock.unlock()
            if done { break }
            guard poll(&fds, nfds_t(fds.count), 100) > 0 else { continue }
            if fds[0].revents != 0 {
                let c = accept(listenFD, nil, nil)
                if c >= 0 {
                    fds.append(pollfd(fd: c, events: Int16(POLLIN), revents: 0))
                    lock.lock()
                    accepted.append(c)
                    lock.unlock()
                }
            }
            var i = 1
            while i < fds.count {
                if fds[i].revents != 0 {
                    let n = read(fds[i].fd, &buffer, buffer.count)
                    if n <= 0 {
                        let fd = fds[i].fd
                        lock.lock()
                        accepted.removeAll { $0 == fd }
                        lock.unlock()
                        close(fd)
                        fds.remove(at: i)
                        continue
                    }
                    lock.lock()
                    received += n
                    lock.broadcast()
                    lock.unlock()
                }
                i += 1
            }
        }
        for p in fds { close(p.fd) }
    }
}
