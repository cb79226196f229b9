#if canImport(Glibc)
import Glibc
#endif

/// A POSIX call that failed: which call, and its errno.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public var call: String
    public var errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// The one funnel for the errno convention (swift-nio's `syscall`, swift-system's `valueOrErrno`): runs
/// `body` again while it fails with EINTR, and turns any other `-1` into a ``SystemError`` naming `call`.
///
/// EAGAIN is an error like the others: callers on non-blocking descriptors check `error.errno == EAGAIN`.
@inline(__always)
public func syscall<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let rc = body()
        if rc >= 0 { return rc }
        let e = errno
        if e == EINTR { continue }
        throw SystemError(call: call(), errno: e)
    }
}

/// Writes every byte of `bytes` to `fd`, through ``syscall(_:_:)`` (short writes continue, EINTR retries).
/// Sockets get `MSG_NOSIGNAL`, so a closed peer is EPIPE, not SIGPIPE.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, socket: Bool = false) throws(SystemError) {
    var off = 0
    while off < bytes.count {
        let rest = bytes.count - off
        let p = bytes.baseAddress! + off
        off += try syscall(socket ? "send" : "write") {
            socket ? Glibc.send(fd, p, rest, Int32(MSG_NOSIGNAL)) : Glibc.write(fd, p, rest)
        }
    }
}

/// Sleeps the whole `nanoseconds`, resuming after signals.
public func sleepNanoseconds(_ nanoseconds: UInt64) {
    var ts = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    var rest = timespec()
    while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
}
