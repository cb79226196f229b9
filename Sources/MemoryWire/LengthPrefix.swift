/// The frame's length prefix (PROTOCOL.md "Framing"): 4 bytes, unsigned, big-endian. The one place that
/// reads and writes it.
public enum LengthPrefix {
    public static let size = 4

    /// The length in the first four bytes of `bytes` (which must hold at least four).
    @inline(__always)
    public static func read(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])
    }

    /// Writes `length` into the four bytes at `destination`.
    @inline(__always)
    public static func write(_ length: UInt32, to destination: UnsafeMutableRawPointer) {
        destination.storeBytes(of: length.bigEndian, as: UInt32.self)
    }

    /// The four bytes of `length`, for building a frame by hand.
    public static func bytes(_ length: Int) -> [UInt8] {
        let n = UInt32(length)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
    }
}
