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
    /// The read cache (nil when `cache.max_bytes` is 0).
    let cache: ItemCache?
    let reloadConfig: () throws -> DaemonConfig
    let startedAt = monotonicNanos()

    let loop: UnsafeMutablePointer<uv_loop_t>
    var listener: UnsafeMutablePointer<uv_pipe_t>?
    var ownsSocketPath = false
    /// The path clients connect to: socket_path, or the activated socket's own path.
    lazy var servingPath = config.socketPath
    var async: UnsafeMutablePointer<uv_async_t>!
    var deadlineTimer: UnsafeMutablePointer<uv_timer_t>!
    var housekeepingTimer: UnsafeMutablePointer<uv_timer_t>!
    var drainTimer: UnsafeMutablePointer<uv_timer_t>?
    var signalHandles: [UnsafeMutablePointer<uv_signal_t>] = []

    var connections: [UInt64: Connection] = [:]
    var nextConnectionID: UInt64 = 1
    var dirty: [Connection] = []
    var spareDirty: [Connection] = []
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    let workQueue: WorkQueue<Call>
    let completions = Mutex<[Completion]>([])
    /// The loop thread's other completion buffer: swapped with `completions` so neither reallocates.
    var spareCompletions: [Completion] = []
    /// Decodes requests on the loop thread without building Swift values (see `FrameDecoder`).
    let decoder = FrameDecoder()
    let versionCString = UnsafePointer(strdup(Server.version)!)
    var workerThreads: [pthread_t] = []
    var deadlines = DeadlineHeap()
    var deadlineArmedFor = UInt64.max
    var connectionLimits: ConnectionLimits
    var draining = false
    var lastWatchdog: UInt64 = 0
    let watchdogInterval: UInt64?
    var lastStatus = ""
    /// nil when `metrics = false`: then every hook is a nil check.
    let metrics: ServerMetrics?
    let answeredCalls: AnsweredCalls?
    var metricsEndpoint: MetricsEndpoint?

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
        self.connectionLimits = ConnectionLimits(
            maxFrameBytes: config.maxFrameBytes, maxOutputBytes: config.maxOutputBytes,
            maxInFlight: config.maxInFlightPerConnection)
        self.maxFrameBytes = config.maxFrameBytes
        self.workQueue = WorkQueue(capacity: config.queueCapacity)
        self.cache =
            config.cacheMaxBytes > 0
            ? ItemCache(maxBytes: config.cacheMaxBytes, ttlMilliseconds: config.cacheTTLMs) : nil
        self.loop = uvAllocate(uv_loop_t.self)
        self.watchdogInterval = Systemd().watchdogInterval()
        let queue = workQueue
        self.metrics =
            config.metrics
            ? ServerMetrics(version: Self.version, backend: backend, stats: stats, queueDepth: { queue.depth }) : nil
        self.answeredCalls = metrics.map(AnsweredCalls.init)
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

        if let metrics { backend.attachMetrics(metrics.backend) }
        if let metrics, let cache { metrics.attach(cache: cache) }
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
        uvMust(
            uv_timer_start(housekeepingTimer, { t in Server.from(t!.pointee.loop).housekeeping() }, 1000, 1000),
            "uv_timer_start")
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
        try startMetricsEndpoint()

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
        do { try uvCheck(uv_loop_close(loop), "uv_loop_close") } catch {
            logger.warning("the event loop still had handles at exit", metadata: ["error": "\(error)"])
        }
        if ownsSocketPath { unlink(config.socketPath) }
        logger.info("memoryd stopped")
    }

    static func from(_ loop: UnsafeMutablePointer<uv_loop_t>!) -> Server {
        Unmanaged<Server>.fromOpaque(loop.pointee.data).takeUnretainedValue()
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
