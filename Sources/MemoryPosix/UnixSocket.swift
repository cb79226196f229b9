#if canImport(Glibc)
import Glibc
#endif

/// `AF_UNIX` addresses and connects, in one place for the daemon, its clients and its tools.
public enum UnixSocket {
    /// Calls `body` with a `sockaddr_un` for `path` and its length; nil when the path does not fit in
    /// `sun_path` (107 bytes plus the NUL).
    public static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R? {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let fits = withUnsafeMutableBytes(of: &addr.sun_path) { raw -> Bool in
            guard bytes.count < raw.count else { return false }
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
            return true
        }
        guard fits else { return nil }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// A new close-on-exec stream socket connected to `path`: the descriptor, or the errno that failed it
    /// (ENAMETOOLONG for a path that does not fit).
    public static func connect(_ path: String) -> Result<Int32, UnixSocketError> {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(UnixSocketError(call: "socket", errno: errno)) }
        let rc = withAddress(path) { Glibc.connect(fd, $0, $1) }
        guard let rc else {
            Glibc.close(fd)
            return .failure(UnixSocketError(call: "connect \(path)", errno: ENAMETOOLONG))
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            return .failure(UnixSocketError(call: "connect \(path)", errno: e))
        }
        return .success(fd)
    }
}

public struct UnixSocketError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32
    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}
