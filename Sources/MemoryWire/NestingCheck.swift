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
            WireScan.lengthDelimitedFields(bytes, start, end) { _, sub in
                if sub.count >= 2 { stack.append((sub.lowerBound, sub.upperBound, depth + 1)) }
                return true
            }
        }
        return true
    }
}

/// A schema-free walk over one message's fields in the protobuf wire format, shared by the checks that run
/// before protobuf-c sees untrusted bytes.
enum WireScan {
    /// Calls `body` with the field number and byte range of each length-delimited field of the message in
    /// `start..<end`, skipping the others, until the bytes run out, stop making sense, or `body` returns false.
    @inline(__always)
    static func lengthDelimitedFields(
        _ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int,
        _ body: (UInt64, Range<Int>) -> Bool
    ) {
        var i = start
        while i < end {
            guard let (tag, afterTag) = varint(b, i, end), tag >> 3 != 0 else { return }
            i = afterTag
            switch tag & 7 {
            case 0:
                guard let (_, next) = varint(b, i, end) else { return }
                i = next
            case 1: i += 8
            case 5: i += 4
            case 2:
                guard let (len, next) = varint(b, i, end), len <= UInt64(end - next) else { return }
                let subEnd = next + Int(len)
                if !body(tag >> 3, next..<subEnd) { return }
                i = subEnd
            default: return
            }
        }
    }

    @inline(__always)
    static func varint(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> (UInt64, Int)? {
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
