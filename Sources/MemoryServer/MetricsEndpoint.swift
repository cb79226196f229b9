import CLibUV
import CMicroHTTPD
import Logging
import MemoryDomain
import MemoryMetrics
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// `GET /metrics` over HTTP, served on the loop thread. libmicrohttpd parses HTTP; it runs in its
/// external-event-loop mode (epoll, no thread of its own): a `uv_poll_t` watches its epoll descriptor, a
/// `uv_timer_t` follows `MHD_get_timeout`, and `MHD_run` does the work in between the memory socket's events.
///
/// A request's line and headers are capped at ``requestBytesLimit`` (MHD answers 431 past it and closes); a
/// client must complete each request within ``requestTimeoutSeconds`` of connecting or of its previous
/// response, or its socket is shut down — an idle keep-alive client and one trickling bytes alike; at most
/// ``connectionLimit`` clients at once. Other paths get 404, other methods 405.
final class MetricsEndpoint {
    static let requestBytesLimit = 16 * 1024
    static let requestTimeoutSeconds: UInt64 = 5
    static let connectionLimit: UInt32 = 16

    let logger: Logger
    /// What it listens on, as an operator would write it (the real port when 0 was asked).
    let address: String
    private let render: () -> String
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private var daemon: OpaquePointer?
    private var poll: UnsafeMutablePointer<uv_poll_t>?
    private var timer: UnsafeMutablePointer<uv_timer_t>?
    private var sweeper: UnsafeMutablePointer<uv_timer_t>?
    private let listener: MetricsListener
    /// Open connections: their socket, and since when they owe a complete request.
    private var clients: [OpaquePointer: Client] = [:]

    struct Client {
        var fd: Int32
        var since: UInt64
        var shutDown = false
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Binds `listen` and starts serving `render()`'s text on `loop`.
    init(
        loop: UnsafeMutablePointer<uv_loop_t>, listen: MetricsListen, socketMode: UInt32, socketGroup: String,
        logger: Logger, render: @escaping () -> String
    ) throws {
        self.loop = loop
        self.logger = logger
        self.render = render
        listener = try MetricsListener(listen, socketMode: socketMode, socketGroup: socketGroup)
        address = listener.address
        do {
            try start()
        } catch {
            stop()
            throw error
        }
    }

    private func start() throws {
        let me = Unmanaged.passUnretained(self).toOpaque()
        guard
            let d = cmhd_start(
                listener.fd, Self.requestBytesLimit, Self.connectionLimit, UInt32(Self.requestTimeoutSeconds),
                { cls, connection, url, method, _, _, uploadSize, _ in
                    MetricsEndpoint.from(cls).answer(connection!, url: url, method: method, uploadSize: uploadSize)
                },
                { cls, connection, _, _ in MetricsEndpoint.from(cls).requestCompleted(connection!) },
                { cls, connection, _, event in MetricsEndpoint.from(cls).connection(connection!, event) },
                me,
                { cls, message in
                    let text = message.map { String(cString: $0) }?.trimming("\n") ?? ""
                    MetricsEndpoint.from(cls).logger.debug("libmicrohttpd: \(text)")
                })
        else {
            throw Failure(description: "metrics endpoint on \(address): libmicrohttpd did not start (see debug log)")
        }
        listener.handedOver()
        daemon = d
        let epoll = cmhd_epoll_fd(d)
        guard epoll >= 0 else { throw Failure(description: "metrics endpoint: no epoll descriptor from libmicrohttpd") }

        let p = uvAllocate(uv_poll_t.self)
        try uvCheck(uv_poll_init(loop, p, epoll), "uv_poll_init(metrics epoll fd \(epoll))")
        poll = p
        p.pointee.data = me
        try uvCheck(
            uv_poll_start(p, Int32(UV_READABLE.rawValue)) { p, _, _ in MetricsEndpoint.from(p!.pointee.data).run() },
            "uv_poll_start")
        let t = uvAllocate(uv_timer_t.self)
        try uvCheck(uv_timer_init(loop, t), "uv_timer_init")
        timer = t
        t.pointee.data = me
        let s = uvAllocate(uv_timer_t.self)
        try uvCheck(uv_timer_init(loop, s), "uv_timer_init")
        sweeper = s
        s.pointee.data = me
        uvMust(
            uv_timer_start(s, { t in MetricsEndpoint.from(t!.pointee.data).sweep() }, 1000, 1000), "uv_timer_start")
        // None of these keep the loop alive: the memory socket decides when memoryd has stopped.
        for h in [cuv_handle(p), cuv_handle(t), cuv_handle(s)] { uv_unref(h) }
        run()
    }

    /// Stops serving: closes the handles, then the daemon (which closes the listening socket and its clients).
    func stop() {
        if let p = poll {
            uv_poll_stop(p)
            uvCloseAndFree(p)
        }
        if let t = timer { uvCloseAndFree(t) }
        if let s = sweeper { uvCloseAndFree(s) }
        poll = nil
        timer = nil
        sweeper = nil
        if let d = daemon { MHD_stop_daemon(d) }
        daemon = nil
        clients = [:]
        listener.close()
    }

    static func from(_ p: UnsafeMutableRawPointer?) -> MetricsEndpoint {
        Unmanaged<MetricsEndpoint>.fromOpaque(p!).takeUnretainedValue()
    }

    // MARK: - Driving libmicrohttpd from the loop

    /// Lets MHD accept, read, answer and write what is ready, then re-arms its timeout.
    private func run() {
        guard let daemon else { return }
        _ = MHD_run(daemon)
        guard let timer else { return }
        var ms: UInt64 = 0
        if MHD_get_timeout(daemon, &ms) == .YES {
            uvMust(uv_timer_start(timer, { t in MetricsEndpoint.from(t!.pointee.data).run() }, ms, 0), "uv_timer_start")
        } else {
            uvMust(uv_timer_stop(timer), "uv_timer_stop")
        }
    }

    /// Shuts down clients that have owed a request for too long: MHD sees the end of their stream at its next
    /// run and frees them. (MHD's own timeout restarts with every byte, so a client trickling bytes would
    /// otherwise keep its slot.)
    private func sweep() {
        let now = monotonicNanos()
        let limit = Self.requestTimeoutSeconds * 1_000_000_000
        var any = false
        for (c, client) in clients where !client.shutDown && now &- client.since > limit {
            logger.debug("metrics endpoint: closing a client that sent no complete request in time")
            shutdown(client.fd, Int32(SHUT_RDWR))
            clients[c]?.shutDown = true
            any = true
        }
        if any { run() }
    }

    private func connection(_ c: OpaquePointer, _ event: MHD_ConnectionNotificationCode) {
        if event == .CONNECTION_NOTIFY_STARTED {
            clients[c] = Client(fd: cmhd_connection_fd(c), since: monotonicNanos())
        } else {
            clients[c] = nil
        }
    }

    private func requestCompleted(_ c: OpaquePointer) {
        clients[c]?.since = monotonicNanos()
    }

    // MARK: - Answering

    private func answer(
        _ c: OpaquePointer, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?,
        uploadSize: UnsafeMutablePointer<Int>?
    ) -> MHD_Result {
        let method = method.map { String(cString: $0) } ?? ""
        let path = url.map { String(cString: $0) } ?? ""
        // Answered at the first call, once the headers are in: a body (never wanted) is not read.
        uploadSize?.pointee = 0
        if method != "GET" && method != "HEAD" {
            return respond(c, 405, "only GET is served here\n", headers: [("Allow", "GET, HEAD")])
        }
        guard path == "/metrics" else {
            return respond(c, 404, "not found: memoryd serves its metrics at /metrics\n")
        }
        return respond(c, 200, render(), headers: [("Content-Type", Exposition.contentType)])
    }

    private func respond(_ c: OpaquePointer, _ status: UInt32, _ body: String, headers: [(String, String)] = [])
        -> MHD_Result
    {
        var body = body
        let response = body.withUTF8 { b in
            MHD_create_response_from_buffer(
                b.count, UnsafeMutableRawPointer(mutating: b.baseAddress), .RESPMEM_MUST_COPY)
        }
        guard let response else { return .NO }
        defer { MHD_destroy_response(response) }
        var all = headers
        if !all.contains(where: { $0.0 == "Content-Type" }) {
            all.append(("Content-Type", "text/plain; charset=utf-8"))
        }
        for (name, value) in all { _ = MHD_add_response_header(response, name, value) }
        return MHD_queue_response(c, status, response)
    }
}
