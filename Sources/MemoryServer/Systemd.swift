import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// sd_notify and socket activation. Every call is a no-op when not run by systemd.
public struct Systemd: Sendable {
    public init() {}

    /// True when `$NOTIFY_SOCKET` is set.
    public var isNotifying: Bool { getenv("NOTIFY_SOCKET") != nil }

    /// Sends `state` (e.g. `READY=1\nSTATUS=serving`) without ever blocking: it is called on the event loop,
    /// and sd_notify(3) blocks when the notify socket's queue is full (10 datagrams nobody read). A message
    /// that does not fit is dropped; errors are ignored, as sd_notify's callers do. Returns whether it was sent.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        guard let p = getenv("NOTIFY_SOCKET") else { return false }
        let path = Array(String(cString: p).utf8)
        // A path, or an abstract name written with a leading "@" (what sd_notify accepts besides vsock).
        guard path.first == UInt8(ascii: "/") || path.first == UInt8(ascii: "@") else { return false }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let fits = withUnsafeMutableBytes(of: &addr.sun_path) { raw -> Bool in
            guard path.count < raw.count else { return false }
            raw.copyBytes(from: path)
            if path[0] == UInt8(ascii: "@") { raw[0] = 0 }
            return true
        }
        guard fits else { return false }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + path.count)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var message = Array(state.utf8)
        let sent = withUnsafePointer(to: &addr) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, &message, message.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), $0, length)
            }
        }
        return sent == message.count
    }

    /// The watchdog interval when `WatchdogSec=` is set for this process.
    public func watchdogInterval() -> UInt64? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return usec
    }

    /// The first socket systemd handed over (`LISTEN_FDS`), if any. Unsets the variables so children
    /// don't inherit them.
    public func listenFD() throws(SystemdError) -> Int32? {
        let n = sd_listen_fds(1)
        if n < 0 { throw SystemdError(call: "sd_listen_fds", code: n) }
        guard n > 0 else { return nil }
        let fd = csystemd_listen_fds_start()
        guard sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0 else {
            throw SystemdError(
                call: "sd_is_socket_unix(fd \(fd))", code: -EINVAL,
                message: "the activated socket is not a listening AF_UNIX stream socket")
        }
        return fd
    }
}

/// An `sd_*` call that failed (negative errno convention).
public struct SystemdError: Error, CustomStringConvertible {
    public var call: String
    public var code: Int32
    public var message = ""
    public var description: String {
        "\(call): \(message.isEmpty ? String(cString: strerror(-code)) : message)"
    }
}
