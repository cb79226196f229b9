import CLibUV

/// A libuv call that failed: which call, and libuv's error name and text.
public struct UVError: Error, CustomStringConvertible {
    public var call: String
    public var code: Int32
    public var description: String {
        "\(call): \(String(cString: uv_err_name(code))) (\(String(cString: uv_strerror(code))))"
    }
}

/// The one funnel for libuv's convention: a negative return is a `UV_E*` error code.
@discardableResult
func uvCheck(_ rc: Int32, _ call: @autoclosure () -> String) throws(UVError) -> Int32 {
    if rc < 0 { throw UVError(call: call(), code: rc) }
    return rc
}

/// Allocates a zeroed libuv handle or request; freed with `free` (handles only in their close callback).
func uvAllocate<T>(_ type: T.Type) -> UnsafeMutablePointer<T> {
    let p = UnsafeMutablePointer<T>.allocate(capacity: 1)
    UnsafeMutableRawPointer(p).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
    return p
}

/// Closes a handle and frees its memory in the close callback, as libuv requires.
func uvCloseAndFree<T>(_ handle: UnsafeMutablePointer<T>) {
    let h = cuv_handle(handle)
    if uv_is_closing(h) != 0 { return }
    uv_close(h) { h in h?.deallocate() }
}

/// The funnel for libuv calls that fail only when misused (a closing handle, a NULL callback): a failure is a
/// bug in memoryd, so it stops the process naming the call instead of carrying on in an unknown state
/// (swift-nio traps on EBADF/EFAULT for the same reason).
@inline(__always)
func uvMust(_ rc: Int32, _ call: @autoclosure () -> String) {
    if rc < 0 { preconditionFailure("\(UVError(call: call(), code: rc))") }
}
