import MemoryMetrics

/// What a storage backend reports about its own work, as `memoryd_backend_*` metrics labelled with its name:
///
/// - `memoryd_backend_request_duration_seconds{backend,operation}`: one request to the backend — a sqlite
///   statement, a Firestore RPC — from start to result, retries counted apart;
/// - `memoryd_backend_errors_total{backend,error_type}`: requests that failed, by the SPEC §3 error type they
///   map to (`CONNECTION_ERROR`, …; errors of the call itself by their code, e.g. `DEADLINE_EXCEEDED`);
/// - `memoryd_backend_retries_total{backend}`: attempts repeated after a transient failure;
/// - the backend's vector index where it has one (``index(entries:users:bytes:hits:misses:)``).
///
/// The daemon makes one and hands it to its backend with ``StoreBackend/attachMetrics(_:)`` before opening
/// connections. Recording is lock-free and safe from any thread; ``requests(_:)`` takes a lock, so a backend
/// resolves each operation once (per prepared statement, per connection) and keeps the cell.
public final class BackendMetrics: Sendable {
    /// The backend's registered name, the `backend` label.
    public let backend: String
    public let registry: MetricsRegistry
    private let durations: HistogramFamily
    private let errorsByType: [CounterCell]
    private let errorsByCode: [CounterCell]
    private let retries: CounterCell

    /// Backend requests range from a few microseconds (a sqlite point read) to seconds (a Firestore retry).
    public static let buckets: [Double] = [0.000_005, 0.000_01, 0.000_025] + CallMetricsBuckets.seconds

    public init(backend: String, registry: MetricsRegistry) {
        self.backend = backend
        self.registry = registry
        durations = registry.histogram(
            "memoryd_backend_request_duration_seconds", help: "Time one request to the storage backend took.",
            labels: ["backend", "operation"], buckets: Self.buckets)
        let errors = registry.counter(
            "memoryd_backend_errors_total", help: "Requests to the storage backend that failed, by error type.",
            labels: ["backend", "error_type"])
        // Every storage type is shown from the start (alerts can rate() them); call codes only once they happen.
        errorsByType = ErrorType.allCases.map {
            errors.cell([backend, $0.metricLabel], shownAtZero: $0 != .unspecified)
        }
        errorsByCode = StatusCode.allCases.map { errors.cell([backend, $0.name], shownAtZero: false) }
        retries = registry.counter(
            "memoryd_backend_retries_total",
            help: "Requests to the storage backend repeated after a transient failure.",
            labels: ["backend"]
        ).cell([backend])
    }

    /// The duration cell of one kind of request (`operation`: a statement or RPC name of a fixed set).
    public func requests(_ operation: String) -> HistogramCell { durations.cell([backend, operation]) }

    /// A request failed with `error`.
    public func recordError(_ error: MemoryError) {
        if error.type == .unspecified {
            errorsByCode[Int(error.code.rawValue)].add()
        } else {
            errorsByType[Int(error.type.rawValue)].add()
        }
    }

    /// A request is being tried again.
    public func recordRetry() { retries.add() }

    /// The backend's vector index, read when the metrics are rendered (each closure must be cheap and
    /// thread-safe; pass only the figures the index keeps): `memoryd_index_entries` (vectors held),
    /// `memoryd_index_users`, `memoryd_index_bytes`, `memoryd_index_hits_total` and `memoryd_index_misses_total`
    /// (searches that found a user's vectors in memory or had to load them).
    public func index(
        entries: @escaping @Sendable () -> Double, users: (@Sendable () -> Double)? = nil,
        bytes: (@Sendable () -> Double)? = nil, hits: (@Sendable () -> Double)? = nil,
        misses: (@Sendable () -> Double)? = nil
    ) {
        let b = backend
        func add(_ name: String, _ help: String, _ type: MetricType, _ read: (@Sendable () -> Double)?) {
            guard let read else { return }
            registry.sampled(name, help: help, type: type, labels: ["backend"]) { [Sample([b], read())] }
        }
        add("memoryd_index_entries", "Vectors held in the search index.", .gauge, entries)
        add("memoryd_index_users", "Users whose vectors are in the search index.", .gauge, users)
        add("memoryd_index_bytes", "Memory the search index holds, in bytes.", .gauge, bytes)
        add("memoryd_index_hits_total", "Searches that found the user's vectors in the index.", .counter, hits)
        add("memoryd_index_misses_total", "Searches that loaded the user's vectors first.", .counter, misses)
    }
}

/// The buckets of `memoryd_call_duration_seconds`: 50 µs to 10 s, about three per decade.
public enum CallMetricsBuckets {
    public static let seconds: [Double] = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
}

extension ErrorType {
    /// The `error_type` label: the proto enum's name (`NOT_FOUND_ERROR`), `UNSPECIFIED` for errors of the call.
    public var metricLabel: String {
        switch self {
        case .unspecified: "UNSPECIFIED"
        case .storage: "STORAGE_ERROR"
        case .connection: "CONNECTION_ERROR"
        case .validation: "VALIDATION_ERROR"
        case .operation: "OPERATION_ERROR"
        case .notFound: "NOT_FOUND_ERROR"
        case .duplicate: "DUPLICATE_ERROR"
        }
    }
}

extension StoreBackend {
    public func attachMetrics(_ metrics: BackendMetrics) {}
}
