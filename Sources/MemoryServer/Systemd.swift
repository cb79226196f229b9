import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// sd_notify and socket activation. Every call is a no-op when not run by systemd.
public struct Systemd: Sendable {
    public init() {}

    /// True when `$NOTIFY_SOCKET` is set.
    public var isNotifying: Bool { getenv("NOTIFY_SOCKET") != nil }

    /// Sends `state` (e.g. `READY=1\nSTATUS=serving`). Errors are ignored, as sd_notify's callers do.
    public func notify(_ state: String) {
        guard isNotifying else { return }
        _ = sd_notify(0, state)
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
