import MemoryDomain

extension FrameCodec {
    /// The status code of an encoded Response frame (length prefix included), as the client will read it:
    /// OK when it has no `status`. Reads a few bytes instead of decoding the frame, so the server can count
    /// what it sends without its workers handing the code along (`memoryd_calls_total{code}`).
    public static func responseStatusCode(_ frame: [UInt8]) -> StatusCode {
        frame.withUnsafeBytes { b in
            guard b.count > 4 else { return .unknown }
            var code: StatusCode = .ok
            // Frame.response (2) → Response.status (2) → Status.code (1, a varint).
            WireScan.lengthDelimitedFields(b, 4, b.count) { field, response in
                guard field == 2 else { return true }
                WireScan.lengthDelimitedFields(b, response.lowerBound, response.upperBound) { field, status in
                    guard field == 2 else { return true }
                    code =
                        firstVarintField1(b, status).flatMap { StatusCode(rawValue: Int32(truncatingIfNeeded: $0)) }
                        ?? .ok
                    return false
                }
                return false
            }
            return code
        }
    }

    /// The value of field 1 when it is a varint, skipping the fields before it.
    private static func firstVarintField1(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> UInt64? {
        var i = r.lowerBound
        while i < r.upperBound {
            guard let (tag, afterTag) = WireScan.varint(b, i, r.upperBound) else { return nil }
            i = afterTag
            switch tag & 7 {
            case 0:
                guard let (v, next) = WireScan.varint(b, i, r.upperBound) else { return nil }
                if tag >> 3 == 1 { return v }
                i = next
            case 1: i += 8
            case 5: i += 4
            case 2:
                guard let (len, next) = WireScan.varint(b, i, r.upperBound) else { return nil }
                i = next + Int(len)
            default: return nil
            }
        }
        return nil
    }
}
