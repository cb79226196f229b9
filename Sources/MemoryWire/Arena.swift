import CMemoryProto
import MemoryDomain

#if canImport(Glibc)
import Glibc
#endif

/// Owns the C memory that protobuf-c structs point at while a message is built and packed.
/// Everything is freed at once when the arena goes away, after packing.
final class Arena {
    /// Separately allocated blocks (large values and the chunks), freed in deinit.
    private var blocks: [UnsafeMutableRawPointer] = []
    /// Small values are bump-allocated from zeroed chunks: one malloc for most messages instead of one per
    /// field.
    private var chunk: UnsafeMutableRawPointer?
    private var chunkUsed = 0
    private var chunkSize = 0
    private static let chunkBytes = 8192
    private static let largeBytes = 1024

    init() {}

    deinit {
        for b in blocks { free(b) }
    }

    /// `bytes` zeroed bytes, 16-aligned.
    private func raw(_ bytes: Int) -> UnsafeMutableRawPointer {
        let n = max(bytes, 1)
        if n > Self.largeBytes {
            let p = calloc(n, 1)!
            blocks.append(p)
            return p
        }
        let aligned = (chunkUsed + 15) & ~15
        if chunk == nil || aligned + n > chunkSize {
            let c = calloc(Self.chunkBytes, 1)!
            blocks.append(c)
            chunk = c
            chunkSize = Self.chunkBytes
            chunkUsed = n
            return c
        }
        chunkUsed = aligned + n
        return chunk! + aligned
    }

    /// A zeroed C array of `count` values.
    func alloc<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        precondition(MemoryLayout<T>.alignment <= 16)
        let p = raw(max(count, 1) * MemoryLayout<T>.stride)
        return p.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// A NUL-terminated copy of `s`; nil for the empty string (protobuf-c skips NULL strings).
    func string(_ s: String) -> UnsafeMutablePointer<CChar>? {
        if s.isEmpty { return nil }
        var s = s
        return s.withUTF8 { u in
            let p = raw(u.count + 1)  // zeroed: the NUL is there already
            p.copyMemory(from: u.baseAddress!, byteCount: u.count)
            return p.bindMemory(to: CChar.self, capacity: u.count + 1)
        }
    }

    func bytes(_ b: [UInt8]) -> ProtobufCBinaryData {
        if b.isEmpty { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = alloc(UInt8.self, count: b.count)
        b.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: b.count) }
        return ProtobufCBinaryData(len: b.count, data: p)
    }

    func floats(_ f: [Float]) -> UnsafeMutablePointer<Float>? {
        if f.isEmpty { return nil }
        let p = alloc(Float.self, count: f.count)
        f.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: f.count) }
        return p
    }

    /// An array of pointers to messages built by `make`.
    func messages<E, T>(_ elements: [E], _ make: (E) -> UnsafeMutablePointer<T>) -> UnsafeMutablePointer<
        UnsafeMutablePointer<T>?
    >? {
        if elements.isEmpty { return nil }
        let arr = alloc(UnsafeMutablePointer<T>?.self, count: elements.count)
        for (i, e) in elements.enumerated() { arr[i] = make(e) }
        return arr
    }
}

/// Reads a protobuf-c string; protobuf-c does not check UTF-8, so this does.
@inline(__always)
func readString(_ p: UnsafeMutablePointer<CChar>?, field: @autoclosure () -> String) throws(MemoryError) -> String {
    guard let p, p.pointee != 0 else { return "" }
    guard let s = String(validatingCString: p) else { throw .validation("\(field()) is not valid UTF-8") }
    return s
}

func readBytes(_ b: ProtobufCBinaryData) -> [UInt8] {
    guard b.len > 0, let d = b.data else { return [] }
    return Array(UnsafeBufferPointer(start: d, count: b.len))
}

func readFloats(_ p: UnsafeMutablePointer<Float>?, _ n: Int) -> [Float] {
    guard n > 0, let p else { return [] }
    return Array(UnsafeBufferPointer(start: p, count: n))
}

/// Iterates a protobuf-c repeated message field.
func forEach<T>(
    _ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?, _ n: Int,
    _ body: (Int, UnsafeMutablePointer<T>) throws(MemoryError) -> Void
) throws(MemoryError) {
    guard let p else { return }
    for i in 0..<n {
        guard let e = p[i] else { continue }
        try body(i, e)
    }
}
