import CCurl

#if canImport(Glibc)
import Glibc
#endif

/// A failed libcurl call: which call, its CURLcode and libcurl's text for it.
struct CurlError: Error, Sendable, CustomStringConvertible {
    var call: String
    var code: UInt32
    var detail: String

    var description: String { "\(call) failed: \(detail) (CURLcode \(code))" }

    var isTimeout: Bool { code == CURLE_OPERATION_TIMEDOUT.rawValue }

    /// libcurl's own words, without the call: what an operator needs in a one-line error.
    var summary: String { isTimeout ? "timed out" : detail }
}

/// The one funnel for CURLcode results: anything but CURLE_OK becomes a `CurlError` naming the call.
@inline(__always)
func curlCheck(_ call: String, _ code: CURLcode, errorBuffer: UnsafePointer<CChar>? = nil) throws(CurlError) {
    guard code != CURLE_OK else { return }
    var detail = String(cString: curl_easy_strerror(code))
    if let errorBuffer, errorBuffer.pointee != 0 { detail = String(cString: errorBuffer) }
    throw CurlError(call: call, code: code.rawValue, detail: detail)
}

/// libcurl's process-wide setup, done once before the first handle.
private let curlGlobalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

/// Where one transfer delivers what arrives. The handle points at the sink only while it performs.
protocol CurlSink: AnyObject {
    /// Body bytes as they arrive; returning false aborts the transfer (CURLE_WRITE_ERROR).
    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool
    /// One header line without its CRLF: the status line, headers and, on HTTP/2, trailers.
    func header(_ line: UnsafeRawBufferPointer)
}

/// libcurl's write callback: hands the bytes to the sink of the handle behind `userdata`.
private let writeCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let handle = Unmanaged<CurlHandle>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * count
    guard let sink = handle.sink else { return n }
    return sink.receive(UnsafeRawBufferPointer(start: data, count: n)) ? n : 0
}

/// libcurl's header callback (trailers included): strips the line end and hands the line to the sink.
private let headerCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int =
    { data, size, count, userdata in
        guard let data, let userdata else { return 0 }
        let handle = Unmanaged<CurlHandle>.fromOpaque(userdata).takeUnretainedValue()
        let n = size * count
        var length = n
        let bytes = UnsafeRawBufferPointer(start: data, count: n)
        while length > 0, bytes[length - 1] == 0x0A || bytes[length - 1] == 0x0D { length -= 1 }
        handle.sink?.header(UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
        return n
    }

/// One libcurl easy handle, reused for every request so its connections stay open: the Firestore connection
/// (HTTP/2) and, now and then, the token endpoint. One per worker, never shared between threads, so the
/// number of workers bounds the connections to Firestore.
final class CurlHandle {
    enum Version {
        case http1
        /// HTTP/2 over TLS, negotiated with ALPN `h2`.
        case http2TLS
        /// HTTP/2 over plain TCP without an upgrade (h2c "prior knowledge"): what gRPC does without TLS.
        case http2PriorKnowledge
    }

    enum Method { case get, post }

    struct Request {
        var method: Method
        var url: String
        var version: Version
        var headers: [String]
        /// The body of a POST; must stay valid until `perform` returns (libcurl does not copy it).
        var body: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)
        var timeoutMs: Int
        /// Ask for gzip/brotli/zstd bodies (JSON answers); never for gRPC, whose messages carry their own framing.
        var acceptEncoding = false
    }

    private var handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    fileprivate var sink: CurlSink?
    private static let empty: [CChar] = [0]

    /// libcurl before 8.0 cannot reuse an HTTP/2 prior-knowledge connection: it sets HTTP/2 up a second time on
    /// it and fails with CURLE_HTTP2 "Error in the HTTP2 framing layer" (curl issue 10634, fixed in 8.0.0;
    /// Debian 12 ships 7.88.1). There, only the request that opens the connection asks for prior knowledge;
    /// later ones ask for plain HTTP/2, which reuses the open connection as is. After any failure the handle's
    /// connections are closed (a new easy handle), so that the next request opens a fresh one again with prior
    /// knowledge, and a dead connection is never taken for an open one.
    private static let priorKnowledgeReuseBroken = ccurl_version_num() < 0x08_00_00
    /// An h2c connection opened with prior knowledge is open (as far as this handle knows).
    private var h2cOpen = false

    init() throws(CurlError) {
        try curlCheck("curl_global_init", curlGlobalInit)
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        guard let h = curl_easy_init() else {
            errorBuffer.deallocate()
            throw CurlError(call: "curl_easy_init", code: 0, detail: "returned NULL")
        }
        handle = h
        do throws(CurlError) {
            try configure()
        } catch {
            curl_easy_cleanup(h)
            errorBuffer.deallocate()
            throw error
        }
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Closes every connection of this handle (by replacing the easy handle: the easy API has no other way).
    func closeConnections() throws(CurlError) {
        guard let h = curl_easy_init() else {
            throw CurlError(call: "curl_easy_init", code: 0, detail: "returned NULL")
        }
        curl_easy_cleanup(handle)
        handle = h
        h2cOpen = false
        try configure()
    }

    private func set(_ name: String, _ option: CURLoption, _ value: Int) throws(CurlError) {
        try curlCheck("curl_easy_setopt(\(name))", ccurl_setopt_long(handle, option, value))
    }

    private func configure() throws(CurlError) {
        try set("NOSIGNAL", CURLOPT_NOSIGNAL, 1)
        try curlCheck("curl_easy_setopt(ERRORBUFFER)", ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer))
        // The callbacks find the current sink through the handle; the handle outlives its transfers.
        let me = Unmanaged.passUnretained(self).toOpaque()
        try curlCheck("curl_easy_setopt(WRITEFUNCTION)", ccurl_setopt_write_function(handle, writeCallback))
        try curlCheck("curl_easy_setopt(WRITEDATA)", ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, me))
        try curlCheck("curl_easy_setopt(HEADERFUNCTION)", ccurl_setopt_header_function(handle, headerCallback))
        try curlCheck("curl_easy_setopt(HEADERDATA)", ccurl_setopt_pointer(handle, CURLOPT_HEADERDATA, me))
        try set("SSL_VERIFYPEER", CURLOPT_SSL_VERIFYPEER, 1)
        try set("SSL_VERIFYHOST", CURLOPT_SSL_VERIFYHOST, 2)
        try set("TCP_KEEPALIVE", CURLOPT_TCP_KEEPALIVE, 1)
        try set("TCP_NODELAY", CURLOPT_TCP_NODELAY, 1)
        // Firestore and, now and then, the token endpoint: keep few connections cached.
        try set("MAXCONNECTS", CURLOPT_MAXCONNECTS, 2)
        // A receive buffer larger than libcurl's 16 KiB default: with it, libcurl 7.88 over HTTP/2 now and then
        // sat on the tail of an answer until its 1 s poll timeout (a history of 20 768-d items took 1.02 s in
        // about half the calls, 12-60 ms otherwise); with 256 KiB no stall was seen, and large answers come in
        // fewer reads.
        try set("BUFFERSIZE", CURLOPT_BUFFERSIZE, 256 * 1024)
        try curlCheck("curl_easy_setopt(USERAGENT)", ccurl_setopt_string(handle, CURLOPT_USERAGENT, "memoryd"))
        // libcurl's own trace of every request on stderr, for debugging a connection in the field.
        if getenv("MEMORYD_CURL_VERBOSE").map({ String(cString: $0) }) == "1" { try set("VERBOSE", CURLOPT_VERBOSE, 1) }
    }

    /// Performs one request on the kept-alive connection, delivering to `sink` as bytes arrive.
    /// - Returns: the HTTP status and the HTTP version used (libcurl's `CURL_HTTP_VERSION_*`).
    /// - Throws: `CurlError` for transport failures (refused, reset, timed out, TLS, aborted by the sink, ...).
    func perform(_ request: Request, sink: CurlSink) throws(CurlError) -> (status: Int, httpVersion: Int) {
        errorBuffer.pointee = 0
        try curlCheck("curl_easy_setopt(URL)", ccurl_setopt_string(handle, CURLOPT_URL, request.url))
        let h2cWorkaround = request.version == .http2PriorKnowledge && Self.priorKnowledgeReuseBroken
        let version: Int32 =
            switch request.version {
            case .http1: Int32(CURL_HTTP_VERSION_1_1)
            case .http2TLS: Int32(CURL_HTTP_VERSION_2TLS)
            case .http2PriorKnowledge:
                h2cWorkaround && h2cOpen ? Int32(CURL_HTTP_VERSION_2_0) : Int32(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)
            }
        try set("HTTP_VERSION", CURLOPT_HTTP_VERSION, Int(version))
        let timeout = max(1, request.timeoutMs)
        try set("TIMEOUT_MS", CURLOPT_TIMEOUT_MS, timeout)
        try set("CONNECTTIMEOUT_MS", CURLOPT_CONNECTTIMEOUT_MS, timeout)
        try curlCheck(
            "curl_easy_setopt(ACCEPT_ENCODING)",
            ccurl_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, request.acceptEncoding ? "" : nil))
        switch request.method {
        case .get:
            try set("HTTPGET", CURLOPT_HTTPGET, 1)
        case .post:
            try set("POST", CURLOPT_POST, 1)
            try set("POSTFIELDSIZE", CURLOPT_POSTFIELDSIZE, request.body.count)
            let code = Self.empty.withUnsafeBufferPointer { fallback in
                ccurl_setopt_pointer(
                    handle, CURLOPT_POSTFIELDS,
                    UnsafeMutableRawPointer(
                        mutating: request.body.baseAddress ?? UnsafeRawPointer(fallback.baseAddress!)))
            }
            try curlCheck("curl_easy_setopt(POSTFIELDS)", code)
        }

        var list: UnsafeMutablePointer<curl_slist>? = nil
        // No "Expect: 100-continue" round trip, no "Accept: */*".
        for h in request.headers + ["Expect:", "Accept:"] {
            guard let appended = curl_slist_append(list, h) else {
                curl_slist_free_all(list)
                throw CurlError(call: "curl_slist_append", code: 0, detail: "out of memory")
            }
            list = appended
        }
        self.sink = sink
        defer {
            self.sink = nil
            _ = ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, nil)
            _ = ccurl_setopt_pointer(handle, CURLOPT_POSTFIELDS, nil)
            curl_slist_free_all(list)
        }
        try curlCheck("curl_easy_setopt(HTTPHEADER)", ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, list))
        do throws(CurlError) {
            try curlCheck(
                "curl_easy_perform(\(request.method == .get ? "GET" : "POST") \(Self.redacted(request.url)))",
                curl_easy_perform(handle), errorBuffer: errorBuffer)
        } catch {
            if h2cWorkaround { try? closeConnections() }
            throw error
        }
        var status = 0
        try curlCheck("curl_easy_getinfo(RESPONSE_CODE)", ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status))
        var httpVersion = 0
        try curlCheck(
            "curl_easy_getinfo(HTTP_VERSION)", ccurl_getinfo_long(handle, CURLINFO_HTTP_VERSION, &httpVersion))
        if h2cWorkaround {
            // Not HTTP/2: the open connection had gone and a new one spoke HTTP/1.1; start again next time.
            h2cOpen = httpVersion == Int(CURL_HTTP_VERSION_2_0)
            if !h2cOpen { try? closeConnections() }
        }
        return (status, httpVersion)
    }

    /// The URL without its query string (which may carry tokens), for messages.
    static func redacted(_ url: String) -> String {
        if let q = url.firstIndex(of: "?") { return String(url[..<q]) }
        return url
    }
}
