import CLibUV
import Logging
import MemoryDomain
import MemoryUtilities
import MemoryWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The memoryd server: one libuv loop thread that accepts, reads, decodes and writes, and a bounded pool
/// of worker threads, each owning one backend connection, that execute calls. Workers hand results back
/// through a mutex-guarded queue and `uv_async_send`.
// The loop thread owns every mutable field; worker threads touch only `workQueue`, `completions`, `stats`,
// `logger` and the immutable `maxFrameBytes`, which are thread-safe.
public final class Server: @unchecked Sendable {
    public static let version = "0.1.0"

    var config: DaemonConfig
    let backend: StoreBackend
    let logger: Logger
    let stats = ServerStats()
    let maxFrameBytes: Int
    let systemd = Systemd()
    private let reloadConfig: () throws -> DaemonConfig
    private let startedAt = monotonicNanos()

    let loop: UnsafeMutablePointer<uv_loop_t>
    private var listener: UnsafeMutablePointer<uv_pipe_t>?
    private var ownsSocketPath = false
    /// The path clients connect to: socket_path, or the activated socket's own path.
    private lazy var servingPath = config.socketPath
    private var async: UnsafeMutablePointer<uv_async_t>!
    private var deadlineTimer: UnsafeMutablePointer<uv_timer_t>!
    private var housekeepingTimer: UnsafeMutablePointer<uv_timer_t>!
    private var drainTimer: UnsafeMutablePointer<uv_timer_t>?
    private var signalHandles: [UnsafeMutablePointer<uv_signal_t>] = []

    private var connections: [UInt64: Connection] = [:]
    private var nextConnectionID: UInt64 = 1
    private var dirty: [Connection] = []
    private var spareDirty: [Connection] = []
    let readBufferSize = 64 * 1024
    let readBuffer: UnsafeMutablePointer<CChar>

    private let workQueue: WorkQueue<Call>
    private let completions = Mutex<[Completion]>([])
    /// The loop thread's other completion buffer: swapped with `completions` so neither reallocates.
    private var spareCompletions: [Completion] = []
    /// Decodes requests on the loop thread without building Swift values (see `FrameDecoder`).
    private let decoder = FrameDecoder()
    private let versionCString = UnsafePointer(strdup(Server.version)!)
    private var workerThreads: [pthread_t] = []
    private var deadlines = DeadlineHeap()
    private var deadlineArmedFor = UInt64.max
    private(set) var maxInFlightPerConnection: Int
    private var draining = false
    private var lastWatchdog: UInt64 = 0
    private let watchdogInterval: UInt64?
    private var lastStatus = ""

    /// - Parameters:
    ///   - reloadConfig: reads the configuration again on SIGHUP.
    public init(
        config: DaemonConfig, backend: StoreBackend, logger: Logger,
        reloadConfig: @escaping () throws -> DaemonConfig
    ) {
        self.config = config
        self.backend = backend
        self.logger = logger
        self.reloadConfig = reloadConfig
        self.maxInFlightPerConnection = config.maxInFlightPerConnection
        self.maxFrameBytes = config.maxFrameBytes
        self.workQueue = WorkQueue(capacity: config.queueCapacity)
        self.loop = uvAllocate(uv_loop_t.self)
        self.readBuffer = .allocate(capacity: 64 * 1024)
        self.watchdogInterval = Systemd().watchdogInterval()
    }

    deinit {
        readBuffer.deallocate()
        loop.deallocate()
    }

    // MARK: - Running

    /// Opens the backend connections, starts the workers, binds (or adopts) the socket, signals READY=1 and
    /// serves until SIGTERM/SIGINT has drained every connection.
    public func run() throws {
        try uvCheck(uv_loop_init(loop), "uv_loop_init")
        loop.pointee.data = Unmanaged.passUnretained(self).toOpaque()

        // One backend connection per worker, opened up front so that a bad backend fails the start.
        var services: [MemoryService] = []
        for _ in 0..<config.workerCount {
            let store = try backend.makeConnection()
            services.append(
                MemoryService(
                    store: store, limits: config.limits, version: Self.version,
                    startedAtUptimeNanos: startedAt, healthFigures: healthFiguresProvider()))
        }

        async = uvAllocate(uv_async_t.self)
        try uvCheck(
            uv_async_init(loop, async) { a in
                Server.from(a!.pointee.loop).drainCompletions()
            }, "uv_async_init")
        deadlineTimer = uvAllocate(uv_timer_t.self)
        try uvCheck(uv_timer_init(loop, deadlineTimer), "uv_timer_init")
        housekeepingTimer = uvAllocate(uv_timer_t.self)
        try uvCheck(uv_timer_init(loop, housekeepingTimer), "uv_timer_init")
        uv_timer_start(housekeepingTimer, { t in Server.from(t!.pointee.loop).housekeeping() }, 1000, 1000)
        uv_unref(cuv_handle(housekeepingTimer))

        for sig in [SIGTERM, SIGINT, SIGHUP] {
            let h = uvAllocate(uv_signal_t.self)
            try uvCheck(uv_signal_init(loop, h), "uv_signal_init")
            try uvCheck(
                uv_signal_start(
                    h,
                    { h, signum in
                        Server.from(h!.pointee.loop).handleSignal(signum)
                    }, sig), "uv_signal_start(\(sig))")
            uv_unref(cuv_handle(h))
            signalHandles.append(h)
        }

        try listen()

        let asyncRef = SendablePointer(async)
        for (i, service) in services.enumerated() {
            let box = SendableBox(service)
            workerThreads.append(
                startThread(name: "memoryd-w\(i)") { [self] in
                    self.workerMain(service: box.value, async: asyncRef.pointer)
                })
        }

        logger.info(
            "memoryd serving",
            metadata: [
                "socket": "\(servingPath)", "backend": "\(backend.name)", "workers": "\(config.workerCount)",
                "version": "\(Self.version)",
            ])
        systemd.notify("READY=1\nSTATUS=\(statusLine())\nMAINPID=\(getpid())")

        uv_run(loop, UV_RUN_DEFAULT)

        // Drained: stop the workers, then the backend.
        stopWorkers()
        for s in services { s.store.close() }
        backend.shutdown()
        closeAllHandles()
        uv_loop_close(loop)
        if ownsSocketPath { unlink(config.socketPath) }
        logger.info("memoryd stopped")
    }

    static func from(_ loop: UnsafeMutablePointer<uv_loop_t>!) -> Server {
        Unmanaged<Server>.fromOpaque(loop.pointee.data).takeUnretainedValue()
    }

    // MARK: - Listening

    private func listen() throws {
        let l = uvAllocate(uv_pipe_t.self)
        try uvCheck(uv_pipe_init(loop, l, 0), "uv_pipe_init")
        listener = l
        l.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        if let fd = try systemd.listenFD() {
            try uvCheck(uv_pipe_open(l, fd), "uv_pipe_open(activated fd \(fd))")
            // The unit's ListenStream= decides the path; socket_path is not used.
            servingPath = SocketPath.boundPath(fd) ?? "activated fd \(fd)"
            logger.info("using the socket systemd activated", metadata: ["fd": "\(fd)", "socket": "\(servingPath)"])
        } else {
            try SocketPath.prepare(config.socketPath)
            try uvCheck(uv_pipe_bind(l, config.socketPath), "uv_pipe_bind(\(config.socketPath))")
            ownsSocketPath = true
            try SocketPath.setPermissions(config.socketPath, mode: config.socketMode, group: config.socketGroup)
        }
        try uvCheck(
            uv_listen(cuv_stream(l), 1024) { server, status in
                let s = Unmanaged<Server>.fromOpaque(server!.pointee.data).takeUnretainedValue()
                if status < 0 {
                    s.logger.warning("accept failed", metadata: ["error": "\(String(cString: uv_strerror(status)))"])
                    return
                }
                s.accept()
            }, "uv_listen(\(config.socketPath))")
    }

    private func accept() {
        guard let listener else { return }
        let h = uvAllocate(uv_pipe_t.self)
        uv_pipe_init(loop, h, 0)
        guard uv_accept(cuv_stream(listener), cuv_stream(h)) == 0 else {
            uvCloseAndFree(h)
            return
        }
        var fd: uv_os_fd_t = -1
        uv_fileno(cuv_handle(h), &fd)
        let peer = peerCredentials(fd)
        let id = nextConnectionID
        nextConnectionID += 1
        let conn = Connection(id: id, handle: h, server: self, peer: peer, logger: logger)
        h.pointee.data = Unmanaged.passUnretained(conn).toOpaque()
        connections[id] = conn
        stats.connections.add(1, ordering: .relaxed)

        let peerMetadata: Logger.Metadata = [
            "peer.uid": "\(peer.uid)", "peer.gid": "\(peer.gid)", "peer.pid": "\(peer.pid)",
        ]
        if draining {
            conn.goAway(.unavailable, "server is shutting down")
        } else if !isAllowed(peer) {
            // Checked before max_connections so that a refused peer learns nothing about the server's load.
            logger.warning("connection refused: peer not in allowed_uids/allowed_gids", metadata: peerMetadata)
            conn.goAway(
                .permissionDenied,
                peer.known
                    ? "permission denied: uid \(peer.uid) (gid \(peer.gid)) is not allowed: it is in neither allowed_uids nor allowed_gids"
                    : "permission denied: memoryd could not read the peer's credentials (SO_PEERCRED)")
        } else if connections.count > config.maxConnections {
            logger.warning(
                "connection refused: max_connections reached", metadata: ["max_connections": "\(config.maxConnections)"]
            )
            conn.goAway(.resourceExhausted, "too many connections (max_connections is \(config.maxConnections))")
        } else {
            conn.logger.debug("connection accepted", metadata: peerMetadata)
            conn.startReading()
        }
        flushDirty()
    }

    private func peerCredentials(_ fd: uv_os_fd_t) -> PeerCredentials {
        var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        guard cuv_peer_cred(fd, &pid, &uid, &gid) == 0 else {
            logger.warning("SO_PEERCRED failed", metadata: ["error": "\(String(cString: strerror(errno)))"])
            return PeerCredentials(pid: 0, uid: .max, gid: .max, known: false)
        }
        var peer = PeerCredentials(pid: pid, uid: uid, gid: gid)
        if !config.allowedGIDs.isEmpty {
            var groups = [UInt32](repeating: 0, count: 256)
            let n = cuv_peer_groups(fd, &groups, Int32(groups.count))
            if n > 0 { peer.groups = Array(groups[0..<Int(n)]) }
        }
        return peer
    }

    /// With no allow-lists, the socket's permissions decide. Otherwise the peer's uid, primary gid or a
    /// supplementary group must be listed (root and memoryd's own uid too: the lists are exactly who may).
    func isAllowed(_ peer: PeerCredentials) -> Bool {
        if config.allowedUIDs.isEmpty && config.allowedGIDs.isEmpty { return true }
        guard peer.known else { return false }
        if config.allowedUIDs.contains(peer.uid) { return true }
        return config.allowedGIDs.contains(peer.gid) || peer.groups.contains(where: config.allowedGIDs.contains)
    }

    func connectionClosed(_ conn: Connection) {
        connections[conn.id] = nil
        stats.connections.subtract(1, ordering: .relaxed)
        if draining && connections.isEmpty { finishDrain() }
    }

    // MARK: - Frames

    func handleFrame(_ body: UnsafeRawBufferPointer, on conn: Connection) {
        // Requests, the hot path: decoded in place.
        do throws(FrameCodec.DecodeError) {
            if try decoder.withRequest(body, { r in handleRequest(r, on: conn) }) != nil { return }
        } catch {
            conn.protocolViolation(.invalidArgument, "\(error)")
            return
        }
        let frame: Frame
        do {
            frame = try FrameCodec.decode(body)
        } catch {
            conn.protocolViolation(.invalidArgument, "\(error)")
            return
        }
        switch frame {
        case .request: break  // handled above
        case .cancel(let id): handleCancel(id, on: conn)
        case .response: conn.protocolViolation(.invalidArgument, "a client may not send Response frames")
        case .goAway:
            // The client is leaving: answer what it sent, then close.
            conn.stopReading()
            conn.closeWhenIdle = true
            conn.closeIfIdle()
        }
    }

    private func respond(_ conn: Connection, _ id: UInt64, _ error: MemoryError) {
        conn.append(FrameCodec.encodeResponse(id: id, error: error, payload: []))
    }

    private func handleRequest(_ r: FrameDecoder.RequestView, on conn: Connection) {
        guard r.id != 0 else {
            conn.protocolViolation(.invalidArgument, "request id 0 is not allowed")
            return
        }
        guard conn.inFlight[r.id] == nil else {
            conn.protocolViolation(.invalidArgument, "request id \(r.id) is already in flight on this connection")
            return
        }
        if r.id > conn.lastRequestID { conn.lastRequestID = r.id }
        stats.callsTotal.add(1, ordering: .relaxed)
        guard let method = MemoryMethod(pathBytes: r.method) else {
            let path = String(decoding: r.method, as: UTF8.self)
            respond(conn, r.id, .call(.unimplemented, "unknown method \(Validation.show(path, max: 128))"))
            return
        }
        if method == .ping {
            // Answered on the loop thread: no queue hop, and packed straight into the connection's output.
            // Its payload is an empty message, but bytes that are not a PingRequest still get the SPEC's
            // ValidationError.
            if r.payload.count > 0 {
                do throws(MemoryError) {
                    _ = try PayloadCodec.decodeRequest(.ping, r.payload)
                } catch {
                    respond(conn, r.id, error)
                    return
                }
            }
            PayloadCodec.withPingResponse(
                versionCString: versionCString, uptimeMs: (monotonicNanos() - startedAt) / 1_000_000
            ) { payload in
                conn.appendResponse(id: r.id, payload: payload)
            }
            return
        }
        let timeout = r.timeoutMs == 0 ? config.defaultTimeoutMs : min(r.timeoutMs, 86_400_000)
        let call = Call(
            connectionID: conn.id, requestID: r.id, method: method, payload: Array(r.payload), timeoutMs: timeout)
        guard workQueue.tryPush(call) else {
            respond(
                conn, r.id,
                .call(.resourceExhausted, "server overloaded: \(workQueue.capacity) calls queued (queue_capacity)"))
            return
        }
        conn.inFlight[r.id] = call
        stats.inFlight.add(1, ordering: .relaxed)
        addDeadline(call)
    }

    private func handleCancel(_ id: UInt64, on conn: Connection) {
        guard let call = conn.inFlight[id] else { return }  // already answered: nothing to do
        if call.abandon() {
            conn.inFlight[id] = nil
            stats.inFlight.subtract(1, ordering: .relaxed)
            respond(conn, id, .call(.cancelled, "cancelled by the client before it started"))
        }
        // A call already running finishes and is answered as usual.
    }

    // MARK: - Workers

    private func workerMain(service: MemoryService, async: UnsafeMutablePointer<uv_async_t>) {
        while let call = workQueue.pop() {
            guard call.start() else { continue }
            stats.busyWorkers.add(1, ordering: .relaxed)
            let frame = execute(call, service)
            stats.busyWorkers.subtract(1, ordering: .relaxed)
            completions.withLock { $0.append(Completion(call: call, frame: frame)) }
            uv_async_send(async)
        }
    }

    private func execute(_ call: Call, _ service: MemoryService) -> [UInt8] {
        if call.deadline.hasPassed {
            return FrameCodec.encodeResponse(
                id: call.requestID, error: .call(.deadlineExceeded, "deadline exceeded before the call started"),
                payload: [])
        }
        do throws(MemoryError) {
            let request = try PayloadCodec.decodeRequest(call.method, call.payload)
            let response = try service.handle(request, context: CallContext(deadline: call.deadline, now: .now()))
            let payload = PayloadCodec.encodeResponse(response)
            let frame = FrameCodec.encodeResponse(id: call.requestID, error: nil, payload: payload)
            guard frame.count - 4 <= maxFrameBytes else {
                throw MemoryError.call(
                    .resourceExhausted,
                    "the response is \(frame.count - 4) bytes, over max_frame_bytes (\(maxFrameBytes)); ask for a smaller page"
                )
            }
            return frame
        } catch {
            stats.record(error)
            if error.type == .storage || error.type == .connection || error.type == .operation {
                logger.warning("call failed", metadata: ["method": "\(call.method.rawValue)", "error": "\(error)"])
            }
            return FrameCodec.encodeResponse(id: call.requestID, error: error, payload: [])
        }
    }

    /// Loop thread: deliver finished calls to their connections (unless they timed out or went away).
    private func drainCompletions() {
        var batch = spareCompletions
        spareCompletions = []
        completions.withLock { swap(&$0, &batch) }
        defer {
            batch.removeAll(keepingCapacity: batch.capacity <= 4096)
            spareCompletions = batch
        }
        for c in batch {
            guard let conn = connections[c.call.connectionID], conn.inFlight[c.call.requestID] === c.call else {
                continue
            }
            conn.inFlight[c.call.requestID] = nil
            c.call.finish()
            stats.inFlight.subtract(1, ordering: .relaxed)
            conn.append(c.frame)
            conn.resumeIfBelowLimit()
        }
        flushDirty()
    }

    func markDirty(_ conn: Connection) {
        if !conn.isDirty {
            conn.isDirty = true
            dirty.append(conn)
        }
    }

    /// One write per connection per loop iteration, however many responses it got.
    func flushDirty() {
        while !dirty.isEmpty {
            // Swap with the spare list rather than copy: neither buffer is reallocated.
            var batch = spareDirty
            swap(&batch, &dirty)
            for conn in batch {
                conn.isDirty = false
                conn.flush()
            }
            batch.removeAll(keepingCapacity: batch.capacity <= 4096)
            spareDirty = batch
        }
    }

    // MARK: - Deadlines

    private func addDeadline(_ call: Call) {
        deadlines.push(.init(deadline: call.deadline.uptimeNanos, call: call))
        if deadlines.count > 4096 && deadlines.count > 4 * stats.inFlight.load(ordering: .relaxed) {
            deadlines.removeFinished()
        }
        armDeadlineTimer()
    }

    private func armDeadlineTimer() {
        guard let earliest = deadlines.earliest else {
            uv_timer_stop(deadlineTimer)
            deadlineArmedFor = .max
            return
        }
        guard earliest < deadlineArmedFor else { return }
        deadlineArmedFor = earliest
        let now = monotonicNanos()
        let ms = earliest > now ? (earliest - now + 999_999) / 1_000_000 : 0
        uv_timer_start(deadlineTimer, { t in Server.from(t!.pointee.loop).deadlinesPassed() }, ms, 0)
    }

    private func deadlinesPassed() {
        deadlineArmedFor = .max
        let now = monotonicNanos()
        while let e = deadlines.earliest, e <= now {
            let call = deadlines.pop()!.call
            guard let conn = connections[call.connectionID], conn.inFlight[call.requestID] === call else { continue }
            call.abandon()
            conn.inFlight[call.requestID] = nil
            stats.inFlight.subtract(1, ordering: .relaxed)
            respond(
                conn, call.requestID,
                .call(.deadlineExceeded, "deadline exceeded after \(call.timeoutMs) ms (\(call.method.rawValue))"))
            conn.resumeIfBelowLimit()
        }
        flushDirty()
        armDeadlineTimer()
    }

    // MARK: - Signals, drain, reload

    private func handleSignal(_ signum: Int32) {
        switch signum {
        case SIGHUP: reload()
        default:
            let name = signum == SIGTERM ? "SIGTERM" : "SIGINT"
            if draining {
                logger.notice("\(name) again: closing connections now")
                closeAllConnections()
            } else {
                logger.info(
                    "\(name): draining",
                    metadata: [
                        "connections": "\(connections.count)",
                        "in_flight": "\(stats.inFlight.load(ordering: .relaxed))",
                    ])
                beginDrain()
            }
        }
    }

    /// Stop accepting, send GoAway everywhere, finish what is in flight (bounded by drain_timeout_ms).
    public func beginDrain() {
        guard !draining else { return }
        draining = true
        systemd.notify("STOPPING=1\nSTATUS=draining \(connections.count) connections")
        if let l = listener {
            uvCloseAndFree(l)
            listener = nil
        }
        for conn in Array(connections.values) {
            conn.goAway(.unavailable, "server is shutting down")
            conn.closeIfIdle()
        }
        flushDirty()
        if connections.isEmpty {
            finishDrain()
            return
        }
        let t = uvAllocate(uv_timer_t.self)
        uv_timer_init(loop, t)
        drainTimer = t
        uv_timer_start(
            t,
            { t in
                let s = Server.from(t!.pointee.loop)
                s.logger.warning(
                    "drain timeout reached; closing the remaining connections",
                    metadata: ["connections": "\(s.connections.count)"])
                s.closeAllConnections()
            }, config.drainTimeoutMs, 0)
    }

    private func closeAllConnections() {
        for conn in Array(connections.values) { conn.close() }
    }

    /// Every connection is gone: stop the workers (a call still running finishes first; they use the async
    /// handle until then), then close the loop's own handles so `uv_run` returns.
    private func finishDrain() {
        stopWorkers()
        closeAllHandles()
    }

    private func stopWorkers() {
        workQueue.close()
        for t in workerThreads { pthread_join(t, nil) }
        workerThreads = []
    }

    private func closeAllHandles() {
        uv_walk(
            loop,
            { h, _ in
                guard let h, uv_is_closing(h) == 0 else { return }
                if h.pointee.type == UV_NAMED_PIPE, h.pointee.data != nil {
                    let loopServer = Server.from(h.pointee.loop)
                    if loopServer.connections.values.contains(where: { cuv_handle($0.handle) == h }) {
                        Unmanaged<Connection>.fromOpaque(h.pointee.data).takeUnretainedValue().close()
                        return
                    }
                }
                uv_close(h) { h in h?.deallocate() }
            }, nil)
        // Closing the signal handles restored the default dispositions; a late SIGTERM while the process
        // finishes its exit must not turn a clean exit 0 into "killed by SIGTERM".
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGHUP, SIG_IGN)
    }

    private func reload() {
        do {
            let new = try reloadConfig()
            if let level = Logger.Level(rawValue: new.logLevel) {
                StderrLogHandler.sharedLevel.store(level.rank, ordering: .relaxed)
            }
            config.logLevel = new.logLevel
            config.maxInFlightPerConnection = new.maxInFlightPerConnection
            maxInFlightPerConnection = new.maxInFlightPerConnection
            config.defaultTimeoutMs = new.defaultTimeoutMs
            config.maxOutputBytes = max(new.maxOutputBytes, config.maxFrameBytes)
            config.maxConnections = new.maxConnections
            config.allowedUIDs = new.allowedUIDs
            config.allowedGIDs = new.allowedGIDs
            config.drainTimeoutMs = new.drainTimeoutMs
            logger.notice("configuration reloaded", metadata: ["log_level": "\(new.logLevel)"])
            systemd.notify("STATUS=\(statusLine())")
        } catch {
            logger.error("reload failed; keeping the running configuration", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Health and status

    private func healthFiguresProvider() -> @Sendable () -> MemoryService.HealthFigures {
        let stats = self.stats
        let backend = self.backend
        let workers = config.workerCount
        let queue = workQueue
        let isFirestore = backend.name == "firestore"
        return {
            let (errors, last) = stats.recentErrors()
            var d = backend.statistics()
            d["connection_pool_size"] = .number(Double(workers))
            d["connections_in_use"] = .number(Double(stats.busyWorkers.load(ordering: .relaxed)))
            d["queue_depth"] = .number(Double(queue.depth))
            d["client_connections"] = .number(Double(stats.connections.load(ordering: .relaxed)))
            d["calls_in_flight"] = .number(Double(stats.inFlight.load(ordering: .relaxed)))
            d["error_count"] = .number(Double(errors))
            d["last_error"] = .string(last)
            if d["circuit_state"] == nil { d["circuit_state"] = .string("closed") }
            return MemoryService.HealthFigures(backend: backend.name, firestore: isFirestore, details: d)
        }
    }

    private func statusLine() -> String {
        "serving \(stats.connections.load(ordering: .relaxed)) connections, \(stats.inFlight.load(ordering: .relaxed)) calls in flight, \(stats.callsTotal.load(ordering: .relaxed)) calls total (\(backend.name))"
    }

    private func housekeeping() {
        let now = monotonicNanos()
        if let interval = watchdogInterval, now - lastWatchdog >= interval * 1000 / 2 {
            lastWatchdog = now
            systemd.notify("WATCHDOG=1")
        }
        let status = statusLine()
        if status != lastStatus && !draining {
            lastStatus = status
            systemd.notify("STATUS=\(status)")
        }
    }
}

/// Hands a pointer or value to another thread where Swift cannot see that doing so is safe.
struct SendablePointer<T>: @unchecked Sendable {  // uv_async_send is the one libuv call safe from any thread
    let pointer: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { pointer = p }
}

struct SendableBox<T>: @unchecked Sendable {  // each service is handed to exactly one worker thread
    let value: T
    init(_ v: T) { value = v }
}
