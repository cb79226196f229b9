import CMemoryProto

/// protobuf-c hands strings over as NUL-terminated `char *` without their length, so a string carrying a
/// NUL byte (valid UTF-8, and easy to send from Python) would silently lose everything after it: an id
/// `a\0b` would be stored as `a`, a text cut short. This walks the wire bytes with the message's descriptor
/// and finds the first string field that contains a NUL, so that the call is refused instead.
/// Iterative (the depth is bounded by ``NestingCheck`` for frames, but payloads are also decoded alone).
enum StringFieldCheck {
    /// The dotted name of the first string field containing a NUL byte, or nil when there is none.
    static func firstStringWithNUL(
        _ bytes: UnsafeRawBufferPointer,
        _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>
    ) -> String? {
        var stack: [(start: Int, end: Int, descriptor: UnsafePointer<ProtobufCMessageDescriptor>, path: String)] =
            [(0, bytes.count, descriptor, "")]
        var found: String?
        while found == nil, let (start, end, desc, path) = stack.popLast() {
            WireScan.lengthDelimitedFields(bytes, start, end) { number, sub in
                guard number <= UInt64(UInt32.max),
                    let field = protobuf_c_message_descriptor_get_field(desc, UInt32(number))
                else {
                    return true
                }
                let name =
                    path.isEmpty
                    ? String(cString: field.pointee.name) : path + "." + String(cString: field.pointee.name)
                switch field.pointee.type {
                case PROTOBUF_C_TYPE_STRING:
                    if UnsafeRawBufferPointer(rebasing: bytes[sub]).contains(0) {
                        found = name
                        return false
                    }
                case PROTOBUF_C_TYPE_MESSAGE:
                    if let d = field.pointee.descriptor {
                        stack.append(
                            (
                                sub.lowerBound, sub.upperBound,
                                d.assumingMemoryBound(to: ProtobufCMessageDescriptor.self), name
                            ))
                    }
                default: break
                }
                return true
            }
        }
        return found
    }
}
