import CCurl

/// A failed libcurl call: which call, its CURLcode and libcurl's text for it.
struct CurlError: Error, Sendable, CustomStringConvertible {
    var call: String
    var code: UInt32
    var detail: String

    var description: String { "\(call) failed: \(detail) (CURLcode \(code))" }

    /// Timeouts and refused/unreachable hosts: the backend is not reachable right now.
    var isTimeout: Bool { code == CURLE_OPERATION_TIMEDOUT.rawValue }
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

/// The body of a response as libcurl hands it over; travels to the write callback through an opaque pointer.
private final class ResponseBuffer {
    var bytes: [UInt8] = []
    var limit: Int

    init(limit: Int) { self.limit = limit }
}

/// libcurl's write callback: appends to the `ResponseBuffer` behind `userdata`. Returning less than was
/// given makes libcurl abort the transfer (CURLE_WRITE_ERROR), which is how an oversized body is refused.
private let writeCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let buffer = Unmanaged<ResponseBuffer>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * count
    guard buffer.bytes.count + n <= buffer.limit else { return 0 }
    data.withMemoryRebound(to: UInt8.self, capacity: n) { p in
        buffer.bytes.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
    }
    return n
}

struct HTTPResponse {
    var status: Int
    var body: [UInt8]
}

/// One HTTP connection: a libcurl easy handle reused for every request, so its TCP/TLS connection is kept
/// alive between requests. Not thread-safe; owned by one `FirestoreConnection` (one worker).
final class HTTPClient {
    enum Method { case get, post }

    private let handle: UnsafeMutableRawPointer
    private let buffer: ResponseBuffer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    /// HTTP/2 over TLS to Google; HTTP/1.1 for the plain-HTTP emulator.
    private let preferHTTP2: Bool

    /// Responses bigger than this are refused (a runQuery page of 1000 full items stays well below).
    static let maxResponseBytes = 256 * 1024 * 1024

    init(preferHTTP2: Bool) throws(CurlError) {
        try curlCheck("curl_global_init", curlGlobalInit)
        guard let h = curl_easy_init() else {
            throw CurlError(call: "curl_easy_init", code: 0, detail: "returned NULL")
        }
        handle = h
        self.preferHTTP2 = preferHTTP2
        buffer = ResponseBuffer(limit: Self.maxResponseBytes)
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
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

    private func configure() throws(CurlError) {
        try curlCheck("curl_easy_setopt(NOSIGNAL)", ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        try curlCheck("curl_easy_setopt(ERRORBUFFER)", ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer))
        try curlCheck("curl_easy_setopt(WRITEFUNCTION)", ccurl_setopt_write_function(handle, writeCallback))
        // The buffer lives as long as the handle (both are ours), so an unretained pointer is enough.
        try curlCheck(
            "curl_easy_setopt(WRITEDATA)",
            ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(buffer).toOpaque()))
        try curlCheck("curl_easy_setopt(SSL_VERIFYPEER)", ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1))
        try curlCheck("curl_easy_setopt(SSL_VERIFYHOST)", ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2))
        try curlCheck("curl_easy_setopt(TCP_KEEPALIVE)", ccurl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1))
        try curlCheck("curl_easy_setopt(TCP_NODELAY)", ccurl_setopt_long(handle, CURLOPT_TCP_NODELAY, 1))
        // One handle talks to Firestore (and now and then to the token endpoint): keep few connections cached.
        try curlCheck("curl_easy_setopt(MAXCONNECTS)", ccurl_setopt_long(handle, CURLOPT_MAXCONNECTS, 2))
        let version = preferHTTP2 ? Int(CURL_HTTP_VERSION_2TLS) : Int(CURL_HTTP_VERSION_1_1)
        try curlCheck("curl_easy_setopt(HTTP_VERSION)", ccurl_setopt_long(handle, CURLOPT_HTTP_VERSION, version))
        try curlCheck("curl_easy_setopt(ACCEPT_ENCODING)", ccurl_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, ""))
        try curlCheck("curl_easy_setopt(USERAGENT)", ccurl_setopt_string(handle, CURLOPT_USERAGENT, "memoryd"))
    }

    /// Performs one request on the kept-alive connection and returns status and body, whatever the status.
    /// - Parameter timeoutMs: the whole request, connecting included.
    /// - Throws: `CurlError` for transport failures (refused, reset, timed out, TLS, ...).
    func request(_ method: Method, url: String, headers: [String], body: [UInt8]? = nil, timeoutMs: Int)
        throws(CurlError) -> HTTPResponse
    {
        buffer.bytes.removeAll(keepingCapacity: buffer.bytes.capacity <= 1 << 20)
        errorBuffer.pointee = 0
        try curlCheck("curl_easy_setopt(URL)", ccurl_setopt_string(handle, CURLOPT_URL, url))
        let timeout = max(1, timeoutMs)
        try curlCheck("curl_easy_setopt(TIMEOUT_MS)", ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeout))
        try curlCheck(
            "curl_easy_setopt(CONNECTTIMEOUT_MS)", ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, timeout))
        switch method {
        case .get:
            try curlCheck("curl_easy_setopt(HTTPGET)", ccurl_setopt_long(handle, CURLOPT_HTTPGET, 1))
        case .post:
            let payload = body ?? []
            try curlCheck("curl_easy_setopt(POST)", ccurl_setopt_long(handle, CURLOPT_POST, 1))
            try curlCheck(
                "curl_easy_setopt(POSTFIELDSIZE)", ccurl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, payload.count))
            // COPYPOSTFIELDS copies exactly POSTFIELDSIZE bytes, so the Swift array need not outlive this call.
            var bytes = payload
            bytes.append(0)  // a valid C pointer even for an empty body
            let code = bytes.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { c in
                    ccurl_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, c.baseAddress!)
                }
            }
            try curlCheck("curl_easy_setopt(COPYPOSTFIELDS)", code)
        }

        var list: UnsafeMutablePointer<curl_slist>? = nil
        for h in headers + ["Expect:"] {
            guard let appended = curl_slist_append(list, h) else {
                curl_slist_free_all(list)
                throw CurlError(call: "curl_slist_append", code: 0, detail: "out of memory")
            }
            list = appended
        }
        defer {
            _ = ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, nil)
            curl_slist_free_all(list)
        }
        try curlCheck("curl_easy_setopt(HTTPHEADER)", ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, list))

        try curlCheck(
            "curl_easy_perform(\(method == .get ? "GET" : "POST") \(Self.redacted(url)))", curl_easy_perform(handle),
            errorBuffer: errorBuffer)
        var status = 0
        try curlCheck("curl_easy_getinfo(RESPONSE_CODE)", ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status))
        return HTTPResponse(status: status, body: buffer.bytes)
    }

    /// The URL without its query string (which may carry tokens), for messages.
    static func redacted(_ url: String) -> String {
        if let q = url.firstIndex(of: "?") { return String(url[..<q]) }
        return url
    }
}
