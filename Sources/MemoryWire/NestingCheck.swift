/// protobuf-c unpacks nested messages recursively with no depth bound, so a 4 MiB frame of nested
/// `google.protobuf.Value`s could overflow the stack. This walks the wire format without a schema, treating
/// every length-delimited field as a possible sub-message, and reports how deep the nesting could go.
/// Ranges at one depth are disjoint, so the walk costs at most `bytes.count × limit` steps.
public enum NestingCheck {
    /// True when no chain of length-delimited fields nests deeper than `limit`.
    public static func isWithin(_ bytes: UnsafeRawBufferPointer, limit: Int) -> Bool {
        var stack: [(start: Int, end: Int, depth: Int)] = [(0, bytes.count, 1)]
        while let (start, end, depth) = stack.popLast() {
            if depth > limit { return false }
            var i = start
            fields: while i < end {
                guard let (tag, afterTag) = varint(bytes, i, end), tag >> 3 != 0 else { break }
                i = afterTag
                switch tag & 7 {
                case 0:
                    guard let (_, next) = varint(bytes, i, end) else { break fields }
                    i = next
                case 1: i += 8
                case 5: i += 4
                case 2:
                    guard let (len, next) = varint(bytes, i, end), len <= UInt64(end - next) else { break fields }
                    let subEnd = next + Int(len)
                    if len >= 2 { stack.append((next, subEnd, depth + 1)) }
                    i = subEnd
                default: break fields
                }
            }
        }
        return true
    }

    @inline(__always)
    private static func varint(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> (UInt64, Int)? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        var i = start
        while i < end, shift < 64 {
            let c = b[i]
            v |= UInt64(c & 0x7f) << shift
            i += 1
            if c & 0x80 == 0 { return (v, i) }
            shift += 7
        }
        return nil
    }
}
