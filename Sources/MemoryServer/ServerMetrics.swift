import MemoryDomain
import MemoryMetrics
import MemoryUtilities

/// The daemon's metrics: their names, labels and help are a contract with dashboards and alerts
/// (docs/operating.md lists them). Calls are counted and timed on the loop thread as they are answered (see
/// `Server+Metrics.swift`); gauges are read when the metrics are rendered. Every cell is resolved here, at
/// start, so recording is an index and a relaxed atomic add.
final class ServerMetrics: Sendable {
    let registry = MetricsRegistry()
    /// Handed to the backend (`StoreBackend.attachMetrics`).
    let backend: BackendMetrics

    /// `memoryd_calls_total{method,code}`: `methods × codes` cells, method-major.
    private let calls: [CounterCell]
    /// `memoryd_call_duration_seconds{method}`.
    private let durations: [HistogramCell]
    private let violations: [CounterCell]
    let peerRefusals: CounterCell

    /// Label values of `method`: every method, then `unknown` for paths that name none (their text is the
    /// client's, so it never becomes a label).
    static let methodLabels = MemoryMethod.allCases.map(\.rawValue) + ["unknown"]
    private static let codeCount = StatusCode.allCases.count

    init(
        version: String, backend store: StoreBackend, stats: ServerStats, queueDepth: @escaping @Sendable () -> Int
    ) {
        let r = registry
        backend = BackendMetrics(backend: store.name, registry: r)
        let callsFamily = r.counter(
            "memoryd_calls_total", help: "Calls answered, by method and status code (gRPC code names).",
            labels: ["method", "code"])
        calls = Self.methodLabels.flatMap { m in
            StatusCode.allCases.map { c in callsFamily.cell([m, c.name], shownAtZero: c == .ok && m != "unknown") }
        }
        let durationFamily = r.histogram(
            "memoryd_call_duration_seconds",
            help: "Time from a request's arrival to its response's write (calls answered on the loop: per read).",
            labels: ["method"], buckets: CallMetricsBuckets.seconds)
        durations = Self.methodLabels.map { durationFamily.cell([$0], shownAtZero: $0 != "unknown") }
        let violationFamily = r.counter(
            "memoryd_protocol_violations_total", help: "Connections closed for breaking the wire protocol, by kind.",
            labels: ["kind"])
        violations = ProtocolViolation.allCases.map { violationFamily.cell([$0.rawValue]) }
        peerRefusals = r.counter(
            "memoryd_peer_refusals_total",
            help: "Connections refused because the peer is not in allowed_uids/allowed_gids."
        ).cell()

        r.sampled("memoryd_connections", help: "Client connections open.", type: .gauge) {
            [Sample(Double(stats.connections.load(ordering: .relaxed)))]
        }
        r.sampled("memoryd_calls_in_flight", help: "Calls accepted and not yet answered.", type: .gauge) {
            [Sample(Double(stats.inFlight.load(ordering: .relaxed)))]
        }
        r.sampled("memoryd_queue_depth", help: "Calls waiting for a worker.", type: .gauge) {
            [Sample(Double(queueDepth()))]
        }
        r.sampled("memoryd_workers_busy", help: "Workers running a call.", type: .gauge) {
            [Sample(Double(stats.busyWorkers.load(ordering: .relaxed)))]
        }
        r.sampled(
            "memoryd_circuit_state", help: "The backend's circuit breaker: 0 closed, 1 half-open, 2 open.", type: .gauge
        ) {
            [Sample(Self.circuitState(store.statistics()["circuit_state"]))]
        }
        r.sampled(
            "memoryd_build_info", help: "Always 1; the labels say which memoryd serves and on which backend.",
            type: .gauge, labels: ["version", "backend"]
        ) { [Sample([version, store.name], 1)] }
        ProcessMetrics.register(on: r)
    }

    /// The read cache's figures, which it keeps anyway for health: read when the metrics are rendered.
    func attach(cache: ItemCache) {
        let r = registry, labels = ["items"]
        r.sampled(
            "memoryd_cache_hits_total", help: "Cache lookups that found the entry.", type: .counter, labels: ["cache"]
        ) {
            [Sample(labels, Double(cache.hits.load(ordering: .relaxed)))]
        }
        r.sampled(
            "memoryd_cache_misses_total", help: "Cache lookups that did not find the entry.", type: .counter,
            labels: ["cache"]
        ) { [Sample(labels, Double(cache.misses.load(ordering: .relaxed)))] }
        r.sampled("memoryd_cache_bytes", help: "Memory the cache holds, in bytes.", type: .gauge, labels: ["cache"]) {
            [Sample(labels, Double(cache.figures.bytes))]
        }
        r.sampled("memoryd_cache_entries", help: "Entries in the cache.", type: .gauge, labels: ["cache"]) {
            [Sample(labels, Double(cache.figures.entries))]
        }
    }

    /// The Prometheus text of every metric.
    func render() -> String { registry.render() }

    /// The cell index of a call's method and code, kept until the call is recorded.
    @inline(__always)
    static func slot(_ method: MemoryMethod?, _ code: StatusCode) -> Int {
        let m = method.map { MethodIndex.of($0) } ?? methodLabels.count - 1
        return m * codeCount + Int(code.rawValue)
    }

    /// Slots: every method label × every code.
    static let slotCount = methodLabels.count * codeCount

    /// Counts and times `count` answered calls of one slot that took the same time.
    @inline(__always)
    func record(slot: Int, count: UInt64, nanoseconds: UInt64) {
        calls[slot].add(count)
        durations[slot / Self.codeCount].observe(nanoseconds: nanoseconds, count: count)
    }

    func recordViolation(_ kind: ProtocolViolation) {
        violations[ProtocolViolation.allCases.firstIndex(of: kind)!].add()
    }

    /// 0 closed, 1 half-open, 2 open; a backend without a breaker is closed.
    static func circuitState(_ v: JSONValue?) -> Double {
        guard case .string(let s) = v else { return 0 }
        switch s.lowercased().replacing("-", with: "_") {
        case "open": return 2
        case "half_open": return 1
        default: return 0
        }
    }
}

/// A method's position in `MemoryMethod.allCases` (Ping, the hot one, is first).
enum MethodIndex {
    private static let all = MemoryMethod.allCases

    @inline(__always)
    static func of(_ m: MemoryMethod) -> Int { all.firstIndex(of: m)! }
}

/// Calls answered since the last flush, recorded together at the flush with one clock reading. Calls
/// answered on the loop (Ping, refusals) carry no start of their own: they are timed from the first of them
/// in the batch and counted per method and code, so 16 pipelined Pings cost 16 plain increments and two
/// clock readings. Loop thread only; raw memory, so recording involves no exclusivity checks or reference
/// counting.
final class AnsweredCalls {
    private struct Scalars {
        var loopStart: UInt64 = 0
        var dirtyCount = 0
        var queuedCount = 0
    }

    let metrics: ServerMetrics
    private let scalars = UnsafeMutablePointer<Scalars>.allocate(capacity: 1)
    /// Loop-answered calls of this batch per slot, and the slots with a non-zero count.
    private let loopCounts: UnsafeMutablePointer<UInt64>
    private let dirty: UnsafeMutablePointer<Int>
    /// Queued calls answered in this batch: slot and arrival.
    private let queuedSlots: UnsafeMutablePointer<Int>
    private let queuedStarts: UnsafeMutablePointer<UInt64>
    private static let queuedCapacity = 4096

    init(_ metrics: ServerMetrics) {
        self.metrics = metrics
        scalars.initialize(to: Scalars())
        loopCounts = .allocate(capacity: ServerMetrics.slotCount)
        loopCounts.initialize(repeating: 0, count: ServerMetrics.slotCount)
        dirty = .allocate(capacity: ServerMetrics.slotCount)
        queuedSlots = .allocate(capacity: Self.queuedCapacity)
        queuedStarts = .allocate(capacity: Self.queuedCapacity)
    }

    deinit {
        scalars.deallocate()
        loopCounts.deallocate()
        dirty.deallocate()
        queuedSlots.deallocate()
        queuedStarts.deallocate()
    }

    @inline(__always)
    func loopAnswered(_ slot: Int) {
        if scalars.pointee.loopStart == 0 { scalars.pointee.loopStart = monotonicNanos() }
        if loopCounts[slot] == 0 {
            dirty[scalars.pointee.dirtyCount] = slot
            scalars.pointee.dirtyCount += 1
        }
        loopCounts[slot] &+= 1
    }

    @inline(__always)
    func queuedAnswered(_ slot: Int, receivedAt: UInt64) {
        if scalars.pointee.queuedCount == Self.queuedCapacity { record() }
        let n = scalars.pointee.queuedCount
        queuedSlots[n] = slot
        queuedStarts[n] = receivedAt
        scalars.pointee.queuedCount = n + 1
    }

    /// Counts and times what was answered since the last call.
    func record() {
        let s = scalars.pointee
        guard s.dirtyCount > 0 || s.queuedCount > 0 else { return }
        let now = monotonicNanos()
        let sinceLoopStart = now >= s.loopStart ? now - s.loopStart : 0
        for i in 0..<s.dirtyCount {
            let slot = dirty[i]
            metrics.record(slot: slot, count: loopCounts[slot], nanoseconds: sinceLoopStart)
            loopCounts[slot] = 0
        }
        for i in 0..<s.queuedCount {
            let start = queuedStarts[i]
            metrics.record(slot: queuedSlots[i], count: 1, nanoseconds: now >= start ? now - start : 0)
        }
        scalars.pointee = Scalars()
    }
}
