/// A plain HTTP response: status and the whole body.
struct HTTPResponse {
    var status: Int
    var body: [UInt8]
}

/// Plain HTTP requests with whole bodies (the token endpoint, tests) on a `CurlHandle`, shared with the
/// gRPC channel of the same worker so that both use the same kept-alive connections.
final class HTTPClient {
    let handle: CurlHandle

    /// Bodies bigger than this are refused (token answers are a few hundred bytes).
    static let maxResponseBytes = 16 * 1024 * 1024

    init(handle: CurlHandle) { self.handle = handle }

    /// A client with a handle of its own (tests).
    convenience init() throws(CurlError) { self.init(handle: try CurlHandle()) }

    /// Performs one request and returns status and body, whatever the status.
    /// - Throws: `CurlError` for transport failures.
    func request(
        _ method: CurlHandle.Method, url: String, headers: [String], body: [UInt8] = [], timeoutMs: Int,
        http2: Bool = false
    ) throws(CurlError) -> HTTPResponse {
        let sink = BufferSink(limit: Self.maxResponseBytes)
        let version: CurlHandle.Version = http2 && url.hasPrefix("https:") ? .http2TLS : .http1
        let result: Result<Int, CurlError> = body.withUnsafeBytes { b in
            let request = CurlHandle.Request(
                method: method, url: url, version: version, headers: headers, body: b, timeoutMs: timeoutMs,
                acceptEncoding: true)
            do throws(CurlError) { return .success(try handle.perform(request, sink: sink).status) } catch {
                return .failure(error)
            }
        }
        return HTTPResponse(status: try result.get(), body: sink.bytes)
    }
}

/// Collects a body; refusing more than `limit` bytes aborts the transfer.
private final class BufferSink: CurlSink {
    var bytes: [UInt8] = []
    let limit: Int

    init(limit: Int) { self.limit = limit }

    func receive(_ data: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count + data.count <= limit else { return false }
        bytes.append(contentsOf: data)
        return true
    }

    func header(_ line: UnsafeRawBufferPointer) {}
}
