import CMemoryProto
import MemoryDomain

/// Encodes and decodes `orchestra.rpc.v1.Frame` with protobuf-c.
public enum FrameCodec {
    /// Frames nesting deeper than this are refused before protobuf-c sees them (see ``NestingCheck``).
    public static let maxNesting = 200

    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case undecodable
        case tooDeep
        case emptyFrame

        public var description: String {
            switch self {
            case .undecodable: "frame is not a valid orchestra.rpc.v1.Frame"
            case .tooDeep: "frame nests messages deeper than \(FrameCodec.maxNesting) levels"
            case .emptyFrame: "frame has no kind set"
            }
        }
    }

    /// Decodes one frame body (without its length prefix).
    public static func decode(_ body: UnsafeRawBufferPointer) throws(DecodeError) -> Frame {
        guard NestingCheck.isWithin(body, limit: maxNesting) else { throw .tooDeep }
        guard let base = body.baseAddress,
            let f = orchestra__rpc__v1__frame__unpack(nil, body.count, base.assumingMemoryBound(to: UInt8.self))
        else { throw .undecodable }
        defer { orchestra__rpc__v1__frame__free_unpacked(f, nil) }
        // A NUL would cut the method or a metadata string short (protobuf-c strings are C strings).
        guard StringFieldCheck.firstStringWithNUL(body, f.pointee.base.descriptor) == nil else { throw .undecodable }
        do throws(MemoryError) {
            switch f.pointee.kind_case {
            case ORCHESTRA__RPC__V1__FRAME__KIND_REQUEST:
                guard let r = f.pointee.request else { throw .validation("") }
                var metadata: [String: String] = [:]
                try forEach(r.pointee.metadata, r.pointee.n_metadata) { (_, e) throws(MemoryError) in
                    metadata[try readString(e.pointee.key, field: "metadata")] = try readString(
                        e.pointee.value, field: "metadata")
                }
                return .request(
                    RequestFrame(
                        id: r.pointee.id, method: try readString(r.pointee.method, field: "method"),
                        timeoutMs: r.pointee.timeout_ms, metadata: metadata,
                        payload: readBytes(r.pointee.payload)))
            case ORCHESTRA__RPC__V1__FRAME__KIND_RESPONSE:
                guard let r = f.pointee.response else { throw .validation("") }
                return .response(
                    ResponseFrame(
                        id: r.pointee.id, error: try readStatus(r.pointee.status),
                        payload: readBytes(r.pointee.payload)))
            case ORCHESTRA__RPC__V1__FRAME__KIND_CANCEL:
                return .cancel(id: f.pointee.cancel?.pointee.id ?? 0)
            case ORCHESTRA__RPC__V1__FRAME__KIND_GOAWAY:
                guard let g = f.pointee.goaway else { throw .validation("") }
                return .goAway(
                    GoAwayFrame(
                        code: StatusCode(rawValue: g.pointee.code) ?? .unknown,
                        message: try readString(g.pointee.message, field: "message"),
                        lastRequestID: g.pointee.last_request_id))
            default:
                throw .validation("")
            }
        } catch {
            throw f.pointee.kind_case.rawValue == 0 ? .emptyFrame : .undecodable
        }
    }

    public static func decode(_ body: [UInt8]) throws(DecodeError) -> Frame {
        let r: Result<Frame, DecodeError> = body.withUnsafeBytes { b in
            do throws(DecodeError) { return .success(try decode(b)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    /// Encodes a frame with its 4-byte big-endian length prefix, ready to write.
    public static func encode(_ frame: Frame) -> [UInt8] {
        let arena = Arena()
        let f = arena.alloc(Orchestra__Rpc__V1__Frame.self)
        orchestra__rpc__v1__frame__init(f)
        switch frame {
        case .request(let r):
            let p = arena.alloc(Orchestra__Rpc__V1__Request.self)
            orchestra__rpc__v1__request__init(p)
            p.pointee.id = r.id
            p.pointee.method = arena.string(r.method)
            p.pointee.timeout_ms = r.timeoutMs
            let keys = r.metadata.keys.sorted()
            p.pointee.n_metadata = keys.count
            p.pointee.metadata = arena.messages(keys) { k in
                let e = arena.alloc(Orchestra__Rpc__V1__Request__MetadataEntry.self)
                orchestra__rpc__v1__request__metadata_entry__init(e)
                e.pointee.key = arena.string(k) ?? arena.emptyCString()
                e.pointee.value = arena.string(r.metadata[k]!) ?? arena.emptyCString()
                return e
            }
            p.pointee.payload = arena.bytes(r.payload)
            f.pointee.kind_case = ORCHESTRA__RPC__V1__FRAME__KIND_REQUEST
            f.pointee.request = p
        case .response(let r):
            return encodeResponse(id: r.id, error: r.error, payload: r.payload)
        case .cancel(let id):
            let p = arena.alloc(Orchestra__Rpc__V1__Cancel.self)
            orchestra__rpc__v1__cancel__init(p)
            p.pointee.id = id
            f.pointee.kind_case = ORCHESTRA__RPC__V1__FRAME__KIND_CANCEL
            f.pointee.cancel = p
        case .goAway(let g):
            let p = arena.alloc(Orchestra__Rpc__V1__GoAway.self)
            orchestra__rpc__v1__go_away__init(p)
            p.pointee.code = g.code.rawValue
            p.pointee.message = arena.string(g.message)
            p.pointee.last_request_id = g.lastRequestID
            f.pointee.kind_case = ORCHESTRA__RPC__V1__FRAME__KIND_GOAWAY
            f.pointee.goaway = p
        }
        return packFrame(f)
    }

    /// Encodes a Response frame; `payload` goes in as is (the hot path of the server).
    public static func encodeResponse(id: UInt64, error: MemoryError?, payload: UnsafeRawBufferPointer) -> [UInt8] {
        let arena: Arena? = error == nil ? nil : Arena()  // only a Status needs one
        var f = Orchestra__Rpc__V1__Frame()
        orchestra__rpc__v1__frame__init(&f)
        var r = Orchestra__Rpc__V1__Response()
        orchestra__rpc__v1__response__init(&r)
        r.id = id
        if let error {
            r.status = arena!.status(error)
        } else if payload.count > 0 {
            r.payload = ProtobufCBinaryData(
                len: payload.count,
                data: UnsafeMutablePointer(mutating: payload.baseAddress!.assumingMemoryBound(to: UInt8.self)))
        }
        return withUnsafeMutablePointer(to: &r) { rp in
            f.kind_case = ORCHESTRA__RPC__V1__FRAME__KIND_RESPONSE
            f.response = rp
            return withUnsafeMutablePointer(to: &f) { fp in withExtendedLifetime(arena) { packFrame(fp) } }
        }
    }

    public static func encodeResponse(id: UInt64, error: MemoryError?, payload: [UInt8]) -> [UInt8] {
        payload.withUnsafeBytes { encodeResponse(id: id, error: error, payload: $0) }
    }

    private static func packFrame(_ f: UnsafeMutablePointer<Orchestra__Rpc__V1__Frame>) -> [UInt8] {
        let size = orchestra__rpc__v1__frame__get_packed_size(f)
        return [UInt8](unsafeUninitializedCapacity: size + 4) { buf, count in
            LengthPrefix.write(UInt32(size), to: buf.baseAddress!)
            let written = orchestra__rpc__v1__frame__pack(f, buf.baseAddress! + 4)
            count = written + 4
        }
    }
}
