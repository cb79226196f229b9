import MemoryDomain

/// Where the gRPC calls go and how: the emulator over h2c (HTTP/2 without TLS, "prior knowledge", as gRPC
/// does without TLS) or Google over TLS with ALPN `h2`.
struct FirestoreEndpoint: Sendable, Equatable {
    /// `http://host:port` or `https://firestore.googleapis.com`.
    var baseURL: String

    var usesTLS: Bool { baseURL.hasPrefix("https:") }
    var version: CurlHandle.Version { usesTLS ? .http2TLS : .http2PriorKnowledge }
}

/// Why a gRPC call produced no status: the transport failed, or a message could not be used.
enum GRPCCallFailure: Error {
    case transport(CurlError)
    case message(MemoryError)
}

/// gRPC over HTTP/2 on a worker's `CurlHandle`: one unary or server-streaming call at a time, the request as
/// one length-prefixed message, the answer's messages handed on one by one as they arrive, and the status
/// read from the trailers (or from the headers of a trailers-only answer).
final class GRPCChannel {
    let handle: CurlHandle
    let endpoint: FirestoreEndpoint

    init(handle: CurlHandle, endpoint: FirestoreEndpoint) {
        self.handle = handle
        self.endpoint = endpoint
    }

    /// Calls `/google.firestore.v1.Firestore/<method>`.
    /// - Parameters:
    ///   - framedRequest: the request message with its 5-byte gRPC prefix.
    ///   - metadata: header lines (authorization, routing).
    ///   - timeoutMs: sent as `grpc-timeout` and used as libcurl's timeout for the whole call.
    ///   - onMessage: each message of the answer, in order, while the call runs.
    /// - Returns: the call's status (OK or not); messages delivered before a failed status are to be discarded.
    func call(
        service: String, method: String, framedRequest: UnsafeRawBufferPointer, metadata: [String], timeoutMs: Int,
        onMessage: (UnsafeRawBufferPointer) throws(MemoryError) -> Void
    ) throws(GRPCCallFailure) -> FirestoreStatus {
        let timeout = max(1, timeoutMs)
        let headers =
            [
                "content-type: application/grpc", "te: trailers", "grpc-timeout: \(min(timeout, 99_999_999))m",
            ] + metadata
        let request = CurlHandle.Request(
            method: .post, url: "\(endpoint.baseURL)/\(service)/\(method)", version: endpoint.version,
            headers: headers, body: framedRequest, timeoutMs: timeout)
        let outcome: Result<FirestoreStatus, GRPCCallFailure> = withoutActuallyEscaping(onMessage) { handler in
            let sink = GRPCCallSink(onMessage: handler)
            let result: (status: Int, httpVersion: Int)
            do throws(CurlError) {
                result = try handle.perform(request, sink: sink)
            } catch {
                return .failure(sink.failure.map { .message($0) } ?? .transport(error))
            }
            if let failure = sink.failure { return .failure(.message(failure)) }
            return .success(sink.status(httpStatus: result.status, httpVersion: result.httpVersion))
        }
        return try outcome.get()
    }

    /// `data` with the gRPC message prefix (uncompressed flag, big-endian length) in its first 5 bytes.
    static func writePrefix(into data: UnsafeMutableRawBufferPointer, messageLength: Int) {
        data[0] = 0
        data[1] = UInt8(truncatingIfNeeded: messageLength >> 24)
        data[2] = UInt8(truncatingIfNeeded: messageLength >> 16)
        data[3] = UInt8(truncatingIfNeeded: messageLength >> 8)
        data[4] = UInt8(truncatingIfNeeded: messageLength)
    }
}

/// What one call collects: messages (handed on at once), `grpc-status` and `grpc-message`.
final class GRPCCallSink: CurlSink {
    private var reader = GRPCMessageReader()
    private let onMessage: (UnsafeRawBufferPointer) throws(MemoryError) -> Void
    private(set) var failure: MemoryError?
    private(set) var grpcStatus: Int32?
    private(set) var grpcMessage = ""

    init(onMessage: @escaping (UnsafeRawBufferPointer) throws(MemoryError) -> Void) {
        self.onMessage = onMessage
    }

    /// The answer came over HTTP/1 (a request that libcurl sent on a new connection without prior knowledge):
    /// not gRPC; its body is dropped and the call ends UNAVAILABLE (retried).
    private var notHTTP2 = false

    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if notHTTP2 { return true }
        do throws(MemoryError) {
            try reader.feed(bytes, onMessage)
            return true
        } catch {
            failure = error
            return false
        }
    }

    func header(_ line: UnsafeRawBufferPointer) {
        if line.count >= 6, line.starts(with: "HTTP/".utf8) {
            notHTTP2 = !line.starts(with: "HTTP/2".utf8)
            return
        }
        // Header names arrive in lower case over HTTP/2.
        if let value = Self.value(of: "grpc-status", in: line) {
            grpcStatus = Int32(String(decoding: value, as: UTF8.self).trimmingSpaces)
        } else if let value = Self.value(of: "grpc-message", in: line) {
            grpcMessage = Self.percentDecoded(value)
        }
    }

    /// The status of the finished call.
    func status(httpStatus: Int, httpVersion: Int) -> FirestoreStatus {
        if notHTTP2 || httpVersion != 3 /* CURL_HTTP_VERSION_2_0 */ {
            return FirestoreStatus(code: .unavailable, message: "the server did not answer over HTTP/2 (gRPC needs it)")
        }
        if let grpcStatus {
            var status = FirestoreStatus(rawCode: grpcStatus, message: grpcMessage)
            if status.code == .ok && reader.hasPartialMessage {
                status = FirestoreStatus(code: .internal, message: "the answer ended inside a message")
            }
            return status
        }
        if httpStatus != 200 { return FirestoreStatus(httpStatus: httpStatus) }
        return FirestoreStatus(code: .internal, message: "the answer ended without a grpc-status")
    }

    /// The value of header `name` in `line` ("name: value"), or nil for another header.
    static func value(of name: StaticString, in line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        let n = name.utf8CodeUnitCount
        guard line.count > n, line[n] == UInt8(ascii: ":") else { return nil }
        let p = name.utf8Start
        for i in 0..<n {
            var c = line[i]
            if c >= 0x41 && c <= 0x5A { c += 0x20 }
            if c != p[i] { return nil }
        }
        var start = n + 1
        while start < line.count, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
        return UnsafeRawBufferPointer(rebasing: line[start...])
    }

    /// `grpc-message` is percent-encoded UTF-8.
    static func percentDecoded(_ bytes: UnsafeRawBufferPointer) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count, let hi = hex(bytes[i + 1]),
                let lo = hex(bytes[i + 2])
            {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
