import MemoryDomain

/// A message of the wire protocol (`orchestra.rpc.v1.Frame`), in Swift.
public enum Frame: Sendable, Equatable {
    case request(RequestFrame)
    case response(ResponseFrame)
    case cancel(id: UInt64)
    case goAway(GoAwayFrame)
}

public struct RequestFrame: Sendable, Equatable {
    public var id: UInt64
    public var method: String
    public var timeoutMs: UInt64
    public var metadata: [String: String]
    public var payload: [UInt8]

    public init(
        id: UInt64, method: String, timeoutMs: UInt64 = 0, metadata: [String: String] = [:], payload: [UInt8] = []
    ) {
        self.id = id
        self.method = method
        self.timeoutMs = timeoutMs
        self.metadata = metadata
        self.payload = payload
    }
}

public struct ResponseFrame: Sendable, Equatable {
    public var id: UInt64
    /// nil when the call succeeded (status code 0).
    public var error: MemoryError?
    public var payload: [UInt8]

    public init(id: UInt64, error: MemoryError? = nil, payload: [UInt8] = []) {
        self.id = id
        self.error = error
        self.payload = payload
    }
}

public struct GoAwayFrame: Sendable, Equatable {
    public var code: StatusCode
    public var message: String
    public var lastRequestID: UInt64

    public init(code: StatusCode, message: String, lastRequestID: UInt64) {
        self.code = code
        self.message = message
        self.lastRequestID = lastRequestID
    }
}

/// Reassembles length-prefixed frames from a byte stream: a 4-byte big-endian length `N` in
/// `1...maxFrameBytes`, then `N` bytes. The length is checked before anything is allocated for the body.
public struct FrameReassembler: Sendable {
    public enum Failure: Error, Equatable, Sendable {
        case zeroLength
        case tooLarge(UInt32)
    }

    public let maxFrameBytes: Int
    private var header: UInt32 = 0
    private var headerBytes = 0
    private var body: [UInt8] = []
    private var expected = 0
    /// A body buffer up to this size is kept for the next frame that spans reads; a larger one is released as
    /// soon as its frame is handed over, so an idle connection holds at most this much.
    public static let keptBufferBytes = 4096

    public init(maxFrameBytes: Int) {
        self.maxFrameBytes = maxFrameBytes
    }

    /// True when a frame has been started but not finished (a peer closing now truncated it).
    public var isMidFrame: Bool { headerBytes > 0 || expected > 0 }

    /// Bytes held for frame bodies (the buffer's capacity), whether or not a frame is under way.
    public var bufferedCapacity: Int { body.capacity }

    /// Feeds bytes; calls `onFrame` with each complete frame body (valid only during the call). When
    /// `onFrame` returns false, stops right after that frame and returns how many bytes were consumed, so
    /// the caller can keep the rest for later. Throws at the first bad length; the stream is unusable then.
    @discardableResult
    public mutating func feed(
        _ bytes: UnsafeRawBufferPointer,
        onFrame: (UnsafeRawBufferPointer) throws -> Bool
    ) throws -> Int {
        var i = 0
        let n = bytes.count
        while i < n {
            if expected == 0 {
                // Fast path: a whole frame sits in the chunk; hand it over without copying.
                if headerBytes == 0, n - i >= 4 {
                    let len = LengthPrefix.read(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + 4)]))
                    try check(len)
                    if n - i - 4 >= Int(len) {
                        let more = try onFrame(UnsafeRawBufferPointer(rebasing: bytes[(i + 4)..<(i + 4 + Int(len))]))
                        i += 4 + Int(len)
                        if !more { return i }
                        continue
                    }
                    header = len
                    headerBytes = 4
                    i += 4
                } else {
                    header = header << 8 | UInt32(bytes[i])
                    headerBytes += 1
                    i += 1
                }
                if headerBytes == 4 {
                    try check(header)
                    expected = Int(header)
                    // No reserveCapacity(expected): a peer announcing 4 MiB and sending nothing costs nothing.
                    body.removeAll(keepingCapacity: true)
                    headerBytes = 0
                    header = 0
                }
                continue
            }
            let take = min(expected - body.count, n - i)
            body.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + take)]))
            i += take
            if body.count == expected {
                expected = 0
                let more = try body.withUnsafeBytes { try onFrame($0) }
                // Don't keep a large buffer for what may now be an idle connection (1,024 of them × 1 MiB).
                if body.capacity > Self.keptBufferBytes { body = [] }
                if !more { return i }
            }
        }
        return n
    }

    private func check(_ len: UInt32) throws(Failure) {
        if len == 0 { throw .zeroLength }
        if Int(len) > maxFrameBytes { throw .tooLarge(len) }
    }
}

extension FrameReassembler.Failure: CustomStringConvertible {
    public var description: String {
        switch self {
        case .zeroLength: "frame length 0 is not allowed"
        case .tooLarge(let n): "frame length \(n) is over the limit"
        }
    }
}
