import CMemoryProto

/// protobuf-c hands strings over as NUL-terminated `char *` without their length, so a string carrying a
/// NUL byte (valid UTF-8, and easy to send from Python) would silently lose everything after it: an id
/// `a\0b` would be stored as `a`, a text cut short. This walks the wire bytes with the message's descriptor
/// and finds the first string field that contains a NUL, so that the call is refused instead.
/// Iterative (the depth is bounded by ``NestingCheck`` for frames, but payloads are also decoded alone).
enum StringFieldCheck {
    /// The dotted name of the first string field containing a NUL byte, or nil when there is none.
    static func firstStringWithNUL(_ bytes: UnsafeRawBufferPointer,
                                   _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> String? {
        var stack: [(start: Int, end: Int, descriptor: UnsafePointer<ProtobufCMessageDescriptor>, path: String)] =
            [(0, bytes.count, descriptor, "")]
        while let (start, end, desc, path) = stack.popLast() {
            var i = start
            fields: while i < end {
                guard let (tag, afterTag) = varint(bytes, i, end) else { break }
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
                    if tag >> 3 <= UInt64(UInt32.max), let field = protobuf_c_message_descriptor_get_field(desc, UInt32(tag >> 3)) {
                        let name = path.isEmpty ? String(cString: field.pointee.name) : path + "." + String(cString: field.pointee.name)
                        switch field.pointee.type {
                        case PROTOBUF_C_TYPE_STRING:
                            if UnsafeRawBufferPointer(rebasing: bytes[next..<subEnd]).contains(0) { return name }
                        case PROTOBUF_C_TYPE_MESSAGE:
                            if let sub = field.pointee.descriptor {
                                stack.append((next, subEnd, sub.assumingMemoryBound(to: ProtobufCMessageDescriptor.self), name))
                            }
                        default: break
                        }
                    }
                    i = subEnd
                default: break fields
                }
            }
        }
        return nil
    }

    private static func varint(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> (UInt64, Int)? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        var i = start
        while i < end && shift < 64 {
            let byte = b[i]
            v |= UInt64(byte & 0x7f) << shift
            i += 1
            if byte & 0x80 == 0 { return (v, i) }
            shift += 7
        }
        return nil
    }
}
