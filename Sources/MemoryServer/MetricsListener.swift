import MemoryDomain
import MemoryPosix

#if canImport(Glibc)
import Glibc
#endif

/// The metrics endpoint's listening socket, made here rather than by libmicrohttpd so that a Unix socket
/// gets the memory socket's rules (a stale file replaced only when nothing listens, `socket_mode`,
/// `socket_group`) and a TCP one is bound exactly where the configuration allowed.
final class MetricsListener {
    private(set) var fd: Int32 = -1
    /// `127.0.0.1:PORT` with the port bound, or `unix:/path`.
    private(set) var address: String
    private var unixPath: String?
    /// True once libmicrohttpd owns `fd` (it closes it when stopped).
    private var owned = false

    init(_ listen: MetricsListen, socketMode: UInt32, socketGroup: String) throws {
        address = listen.description
        do {
            switch listen {
            case .unix(let path):
                try SocketPath.prepare(path)
                fd = try syscall("socket(AF_UNIX)") {
                    socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                }
                let rc = UnixSocket.withAddress(path) { addr, len in bind(fd, addr, len) }
                guard rc == 0 else { throw SystemError(call: "bind(\(path))", errno: rc == nil ? ENAMETOOLONG : errno) }
                unixPath = path
                try SocketPath.setPermissions(path, mode: socketMode, group: socketGroup)
            case .tcp(let host, let port):
                let v6 = host.contains(":")
                fd = try syscall("socket") {
                    socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                }
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                if v6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
                try bindTCP(host: host, port: port, v6: v6)
            }
            _ = try syscall("listen(metrics)") { Glibc.listen(fd, 64) }
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        } catch {
            close()
            throw MetricsEndpoint.Failure(description: "metrics_listen \(listen): \(error)")
        }
    }

    private func bindTCP(host: String, port: UInt16, v6: Bool) throws {
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else {
                throw SystemError(call: "inet_pton(\(host))", errno: EINVAL)
            }
            _ = try syscall("bind(\(address))") {
                withUnsafePointer(to: &a) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                    }
                }
            }
            var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
            _ = withUnsafeMutablePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            address = "[\(host)]:\(UInt16(bigEndian: a.sin6_port))"
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else {
                throw SystemError(call: "inet_pton(\(host))", errno: EINVAL)
            }
            _ = try syscall("bind(\(address))") {
                withUnsafePointer(to: &a) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            address = "\(host):\(UInt16(bigEndian: a.sin_port))"
        }
    }

    /// libmicrohttpd took the socket: it closes it.
    func handedOver() { owned = true }

    /// Closes the socket unless libmicrohttpd owns it, and removes a Unix socket's file.
    func close() {
        if fd >= 0 && !owned { Glibc.close(fd) }
        fd = -1
        if let unixPath { unlink(unixPath) }
        unixPath = nil
    }
}
