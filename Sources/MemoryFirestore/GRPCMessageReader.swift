import MemoryDomain

/// Splits a gRPC response body into its messages as the bytes arrive: each message is 1 flag byte
/// (0 = uncompressed), a 4-byte big-endian length and that many bytes of protobuf. A server-streaming answer
/// (RunQuery, BatchGetDocuments) holds many; each is handed on as soon as it is complete, so a large answer
/// is never held whole. Bytes of an incomplete message wait in a buffer for the next read.
struct GRPCMessageReader {
    /// A message longer than this is refused before anything is allocated for it (a Firestore document is at
    /// most 1 MiB; a RunQuery message holds one document).
    let maxMessageBytes: Int
    private var pending: [UInt8] = []
    /// Messages handed on so far.
    private(set) var messages = 0

    init(maxMessageBytes: Int = 16 * 1024 * 1024) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// True when bytes of an unfinished message are waiting (at the end of a stream: a truncated answer).
    var hasPartialMessage: Bool { !pending.isEmpty }

    /// Consumes `bytes`, calling `onMessage` with each message completed by them, in order.
    /// - Throws: OperationError for a compressed or oversized message; whatever `onMessage` throws.
    mutating func feed(
        _ bytes: UnsafeRawBufferPointer, _ onMessage: (UnsafeRawBufferPointer) throws(MemoryError) -> Void
    ) throws(MemoryError) {
        var rest = bytes
        // Complete a waiting message first, taking only what it still needs (its prefix, then its body).
        while !pending.isEmpty {
            let need = try missing(after: pending)
            if need == 0 {
                let message = pending
                pending.removeAll(keepingCapacity: pending.capacity <= 1 << 20)
                messages += 1
                try withBytes(message) { (m) throws(MemoryError) in
                    try onMessage(UnsafeRawBufferPointer(rebasing: m[5...]))
                }
                break
            }
            if rest.isEmpty { return }
            let take = min(need, rest.count)
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[0..<take]))
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
        }
        // Whole messages straight out of the bytes libcurl handed over, without copying.
        while rest.count >= 5 {
            let length = try self.length(rest)
            guard rest.count >= 5 + length else { break }
            messages += 1
            try onMessage(UnsafeRawBufferPointer(rebasing: rest[5..<(5 + length)]))
            rest = UnsafeRawBufferPointer(rebasing: rest[(5 + length)...])
        }
        pending.append(contentsOf: rest)
    }

    /// Bytes still missing from the message that `buffer` starts (its prefix first).
    private func missing(after buffer: [UInt8]) throws(MemoryError) -> Int {
        guard buffer.count >= 5 else { return 5 - buffer.count }
        let length = try withBytes(buffer) { (b) throws(MemoryError) -> Int in try self.length(b) }
        return 5 + length - buffer.count
    }

    /// The length in a message prefix, checked against the limit before anything is buffered for it.
    private func length(_ prefix: UnsafeRawBufferPointer) throws(MemoryError) -> Int {
        guard prefix[0] == 0 else {
            throw .operation(
                "firestore.grpc",
                "Firestore answered a compressed gRPC message (flag \(prefix[0])), which was not asked for")
        }
        let length = Int(prefix[1]) << 24 | Int(prefix[2]) << 16 | Int(prefix[3]) << 8 | Int(prefix[4])
        guard length <= maxMessageBytes else {
            throw .operation(
                "firestore.grpc",
                "Firestore answered a gRPC message of \(length) bytes; the limit is \(maxMessageBytes)")
        }
        return length
    }
}

/// `Array.withUnsafeBytes` keeping the error's type (the standard library's rethrows `any Error`).
func withBytes<R>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(MemoryError) -> R) throws(MemoryError) -> R
{
    let result: Result<R, MemoryError> = array.withUnsafeBytes { b in
        do throws(MemoryError) { return .success(try body(b)) } catch { return .failure(error) }
    }
    return try result.get()
}
