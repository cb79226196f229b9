import CFirestoreProto
import MemoryDomain

#if canImport(Glibc)
import Glibc
#endif

/// C memory for protobuf-c messages, released all at once.
///
/// Requests are built in it: every struct, string and array a message points at comes from here, so building
/// costs a few bump allocations instead of one malloc per field, and nothing is freed field by field.
/// Answers are unpacked into it (it is protobuf-c's allocator for them) and read straight into Swift values;
/// `reset()` then drops the message at once, keeping the first chunk for the next one.
final class ProtoArena {
    private var chunks: [UnsafeMutableRawPointer] = []
    private var large: [UnsafeMutableRawPointer] = []
    private var used = 0
    private let chunkBytes: Int
    /// protobuf-c's view of this arena (its `free` does nothing: memory goes back at `reset`).
    let allocator: UnsafeMutablePointer<ProtobufCAllocator>

    init(chunkBytes: Int = 64 * 1024) {
        self.chunkBytes = chunkBytes
        allocator = .allocate(capacity: 1)
        allocator.initialize(to: ProtobufCAllocator(alloc: arenaAlloc, free: arenaFree, allocator_data: nil))
        allocator.pointee.allocator_data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        for c in chunks { free(c) }
        for b in large { free(b) }
        allocator.deallocate()
    }

    /// Forgets everything allocated so far; keeps the first chunk.
    func reset() {
        for b in large { free(b) }
        large.removeAll(keepingCapacity: true)
        if chunks.count > 1 {
            for c in chunks[1...] { free(c) }
            chunks.removeSubrange(1...)
        }
        used = 0
    }

    /// `bytes` uninitialized bytes, 16-aligned.
    fileprivate func raw(_ bytes: Int) -> UnsafeMutableRawPointer {
        let n = max(bytes, 1)
        if n > chunkBytes / 4 {
            let p = malloc(n)!
            large.append(p)
            return p
        }
        let aligned = (used + 15) & ~15
        if chunks.isEmpty || aligned + n > chunkBytes {
            if chunks.isEmpty || used > 0 {
                chunks.append(malloc(chunkBytes)!)
            }
            used = n
            return chunks[chunks.count - 1]
        }
        used = aligned + n
        return chunks[chunks.count - 1] + aligned
    }

    /// A zeroed C array of `count` values.
    func alloc<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        precondition(MemoryLayout<T>.alignment <= 16)
        let bytes = max(count, 1) * MemoryLayout<T>.stride
        let p = raw(bytes)
        memset(p, 0, bytes)
        return p.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// A message initialized by its generated `*_init` function.
    func message<T>(_ type: T.Type, _ initialize: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let p = alloc(T.self)
        initialize(p)
        return p
    }

    /// A NUL-terminated copy of `s` (never NULL, so oneof strings are always sent).
    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        var s = s
        return s.withUTF8 { u in
            let p = raw(u.count + 1)
            if u.count > 0 { p.copyMemory(from: u.baseAddress!, byteCount: u.count) }
            p.storeBytes(of: 0, toByteOffset: u.count, as: UInt8.self)
            return p.bindMemory(to: CChar.self, capacity: u.count + 1)
        }
    }

    /// An array of pointers holding `make(e)` for each element.
    func array<E, T>(_ elements: [E], _ make: (E) -> UnsafeMutablePointer<T>) -> UnsafeMutablePointer<
        UnsafeMutablePointer<T>?
    >? {
        if elements.isEmpty { return nil }
        let arr = alloc(UnsafeMutablePointer<T>?.self, count: elements.count)
        for (i, e) in elements.enumerated() { arr[i] = make(e) }
        return arr
    }

    /// `message` packed behind the 5-byte gRPC message prefix, ready to send.
    static func framed<T>(_ message: UnsafeMutablePointer<T>) -> [UInt8] {
        let base = UnsafeRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
        let size = protobuf_c_message_get_packed_size(base)
        return [UInt8](unsafeUninitializedCapacity: size + 5) { buf, n in
            GRPCChannel.writePrefix(into: UnsafeMutableRawBufferPointer(buf), messageLength: size)
            let written = protobuf_c_message_pack(base, buf.baseAddress! + 5)
            n = 5 + written
        }
    }

    typealias Unpacker<T> = (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) ->
        UnsafeMutablePointer<T>?

    /// Unpacks one answer message into this arena; valid until the next `reset()`.
    /// - Throws: OperationError naming `what` when the bytes do not decode.
    func unpack<T>(_ bytes: UnsafeRawBufferPointer, _ unpacker: Unpacker<T>, what: String) throws(MemoryError)
        -> UnsafeMutablePointer<T>
    {
        guard let m = unpacker(allocator, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            throw .operation("firestore.grpc", "Firestore answered a \(what) that does not decode")
        }
        return m
    }
}

private func arenaAlloc(_ data: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
    Unmanaged<ProtoArena>.fromOpaque(data!).takeUnretainedValue().raw(size)
}

private func arenaFree(_ data: UnsafeMutableRawPointer?, _ pointer: UnsafeMutableRawPointer?) {}
