import CMemoryProto

#if canImport(Glibc)
import Glibc
#endif

/// The server's request decoder: the same checks as ``FrameCodec/decode(_:)-([UInt8])`` for Request frames,
/// without building Swift values. protobuf-c unpacks into a reusable bump region (no malloc for a small
/// frame) and the caller sees the method and payload as bytes, valid only inside the closure. One decoder per
/// thread (the loop thread owns the server's).
public final class FrameDecoder {
    /// A decoded Request; its buffers point into the decoder's region and die when the closure returns.
    public struct RequestView {
        public var id: UInt64
        public var timeoutMs: UInt64
        /// The method path, UTF-8 (checked).
        public var method: UnsafeRawBufferPointer
        public var payload: UnsafeRawBufferPointer
    }

    private let region: UnsafeMutableRawPointer
    private let regionSize: Int
    private var used = 0
    private var allocator = ProtobufCAllocator()

    public init(regionBytes: Int = 64 * 1024) {
        regionSize = regionBytes
        region = .allocate(byteCount: regionBytes, alignment: 16)
        allocator.alloc = { data, size in
            let d = Unmanaged<FrameDecoder>.fromOpaque(data!).takeUnretainedValue()
            let aligned = (d.used + 15) & ~15
            if aligned + size <= d.regionSize {
                d.used = aligned + size
                return d.region + aligned
            }
            return malloc(max(size, 1))
        }
        allocator.free = { data, p in
            guard let p else { return }
            let d = Unmanaged<FrameDecoder>.fromOpaque(data!).takeUnretainedValue()
            if p >= UnsafeMutableRawPointer(d.region) && p < d.region + d.regionSize { return }
            free(p)
        }
        allocator.allocator_data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { region.deallocate() }

    /// Decodes `body`; when it is a Request, calls `fn` with it and returns its result. Returns nil for the
    /// other kinds of frame (decode those with ``FrameCodec``). Throws what `FrameCodec.decode` throws.
    public func withRequest<R>(_ body: UnsafeRawBufferPointer, _ fn: (RequestView) -> R) throws(FrameCodec.DecodeError)
        -> R?
    {
        guard NestingCheck.isWithin(body, limit: FrameCodec.maxNesting) else { throw .tooDeep }
        used = 0
        defer { used = 0 }
        guard let base = body.baseAddress,
            let f = orchestra__rpc__v1__frame__unpack(&allocator, body.count, base.assumingMemoryBound(to: UInt8.self))
        else { throw .undecodable }
        defer { orchestra__rpc__v1__frame__free_unpacked(f, &allocator) }
        // As in FrameCodec.decode: a NUL inside a string (e.g. ".../Ping\0junk") would be cut silently.
        guard StringFieldCheck.firstStringWithNUL(body, f.pointee.base.descriptor) == nil else { throw .undecodable }
        guard f.pointee.kind_case == ORCHESTRA__RPC__V1__FRAME__KIND_REQUEST else {
            if f.pointee.kind_case.rawValue == 0 { throw .emptyFrame }
            return nil
        }
        guard let r = f.pointee.request else { throw .undecodable }
        // The strings protobuf-c does not check: UTF-8, as readString requires.
        for i in 0..<r.pointee.n_metadata {
            guard let e = r.pointee.metadata[i] else { continue }
            guard Self.isUTF8(e.pointee.key), Self.isUTF8(e.pointee.value) else { throw .undecodable }
        }
        guard Self.isUTF8(r.pointee.method) else { throw .undecodable }
        let method =
            r.pointee.method.map { UnsafeRawBufferPointer(start: $0, count: strlen($0)) }
            ?? UnsafeRawBufferPointer(start: nil, count: 0)
        let p = r.pointee.payload
        let payload =
            p.len > 0 && p.data != nil
            ? UnsafeRawBufferPointer(start: p.data, count: p.len) : UnsafeRawBufferPointer(start: nil, count: 0)
        return fn(RequestView(id: r.pointee.id, timeoutMs: r.pointee.timeout_ms, method: method, payload: payload))
    }

    /// True for NULL, or a NUL-terminated valid UTF-8 string (ASCII fast path, no allocation).
    static func isUTF8(_ p: UnsafeMutablePointer<CChar>?) -> Bool {
        guard let p else { return true }
        let n = strlen(p)
        let bytes = UnsafeRawBufferPointer(start: p, count: n)
        if bytes.allSatisfy({ $0 < 0x80 }) { return true }
        return String(validating: bytes, as: UTF8.self) != nil
    }
}

extension FrameCodec {
    /// Appends an OK Response frame (length prefix included) to `out`, packing in place: no allocation when
    /// `out` has room.
    public static func appendResponse(id: UInt64, payload: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var f = Orchestra__Rpc__V1__Frame()
        orchestra__rpc__v1__frame__init(&f)
        var r = Orchestra__Rpc__V1__Response()
        orchestra__rpc__v1__response__init(&r)
        r.id = id
        if payload.count > 0 {
            r.payload = ProtobufCBinaryData(
                len: payload.count,
                data: UnsafeMutablePointer(mutating: payload.baseAddress!.assumingMemoryBound(to: UInt8.self)))
        }
        withUnsafeMutablePointer(to: &r) { rp in
            f.kind_case = ORCHESTRA__RPC__V1__FRAME__KIND_RESPONSE
            f.response = rp
            withUnsafeMutablePointer(to: &f) { fp in
                let size = orchestra__rpc__v1__frame__get_packed_size(fp)
                // Packed aside, then appended with one memcpy: growing the array element by element (as
                // `append(contentsOf: repeatElement(0, …))` does in a debug build) held the loop for ~0.1 s
                // per 256 KiB answer.
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: size + 4) { t in
                    LengthPrefix.write(UInt32(size), to: t.baseAddress!)
                    _ = orchestra__rpc__v1__frame__pack(fp, t.baseAddress! + 4)
                    out.append(contentsOf: UnsafeBufferPointer(t))
                }
            }
        }
    }
}

extension PayloadCodec {
    /// Packs a PingResponse on the stack and hands its bytes to `body` (the loop thread's Ping, no allocation).
    public static func withPingResponse<R>(
        versionCString: UnsafePointer<CChar>, uptimeMs: UInt64,
        _ body: (UnsafeRawBufferPointer) -> R
    ) -> R {
        var m = Orchestra__Memory__V1__PingResponse()
        orchestra__memory__v1__ping_response__init(&m)
        m.server_version = UnsafeMutablePointer(mutating: versionCString)
        m.uptime_ms = uptimeMs
        return withUnsafeMutablePointer(to: &m) { mp in
            let base = UnsafeRawPointer(mp).assumingMemoryBound(to: ProtobufCMessage.self)
            let size = protobuf_c_message_get_packed_size(base)
            return withUnsafeTemporaryAllocation(byteCount: max(size, 1), alignment: 8) { buf in
                let n = protobuf_c_message_pack(base, buf.baseAddress!.assumingMemoryBound(to: UInt8.self))
                return body(UnsafeRawBufferPointer(start: buf.baseAddress, count: n))
            }
        }
    }
}

extension PayloadCodec {
    /// The id of a GetMemoryItemRequest that holds exactly its one field (`1: string id`, 1…256 bytes), read
    /// without protobuf-c, for the server's cache lookup on the loop thread. nil for anything else — other
    /// fields, an empty or oversized id, a NUL byte — which then takes the ordinary path and its checks.
    public static func plainGetMemoryItemID(_ payload: UnsafeRawBufferPointer) -> String? {
        guard payload.count >= 3, payload[0] == 0x0a else { return nil }
        // A length below 128 is one varint byte; 128...256 takes two.
        var length = Int(payload[1])
        var start = 2
        if length & 0x80 != 0 {
            guard payload.count >= 4, payload[2] & 0x80 == 0 else { return nil }
            length = (length & 0x7f) | Int(payload[2]) << 7
            start = 3
        }
        guard length >= 1, length <= 256, start + length == payload.count else { return nil }
        let bytes = UnsafeRawBufferPointer(rebasing: payload[start...])
        guard !bytes.contains(0) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}
