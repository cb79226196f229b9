import Logging
import MemoryDomain
import MemoryUtilities

/// The Firestore backend (SPEC §9): Firestore's gRPC API over libcurl's HTTP/2, one kept-alive connection per
/// worker, a token cache and a circuit breaker shared by all of them.
public final class FirestoreBackend: StoreBackend, @unchecked Sendable {
    // Every stored property is immutable and Sendable; shared mutable state lives in `FirestoreShared`
    // behind Mutex/Atomic.
    public let name = "firestore"
    public var reportsAsFirestore: Bool { true }
    public let config: FirestoreConfig
    let limits: Limits
    let logger: Logger
    let shared: FirestoreShared

    /// Checks the configuration and loads credentials; makes no request (the first call or health probe does).
    /// - Throws: ConnectionError naming the key when the configuration or the credentials are unusable.
    public init(config: FirestoreConfig, limits: Limits, logger: Logger) throws(MemoryError) {
        guard !config.projectID.isEmpty else {
            throw .connection("firestore.project_id is empty: set it, GOOGLE_CLOUD_PROJECT or --project-id")
        }
        guard config.poolSize >= 1 else {
            throw .connection("firestore.connection_pool_size is \(config.poolSize); it must be at least 1")
        }
        guard config.batchSize >= 1 else {
            throw .connection("firestore.batch_size is \(config.batchSize); it must be at least 1")
        }
        guard config.requestTimeoutMs >= 1 else {
            throw .connection("firestore.request_timeout_ms is \(config.requestTimeoutMs); it must be at least 1")
        }
        guard config.maxRetries >= 0 else {
            throw .connection("firestore.max_retries is \(config.maxRetries); it must not be negative")
        }
        let tokens: TokenSource
        if let emulator = config.emulatorHost, !emulator.isEmpty {
            tokens = TokenSource(kind: .emulator)
        } else if let path = config.credentialsPath, !path.isEmpty {
            tokens = try TokenSource.serviceAccount(path: path)
        } else {
            tokens = TokenSource(kind: .metadataServer(url: config.metadataServerURL))
        }
        var config = config
        if config.emulatorHost?.isEmpty == true { config.emulatorHost = nil }
        self.config = config
        self.limits = limits
        self.logger = logger
        self.shared = FirestoreShared(config: config, tokens: tokens, logger: logger)
        logger.info(
            "firestore backend: project \(config.projectID), database \(config.database), endpoint \(config.endpointDescription)",
            metadata: [
                "firestore.project": .string(config.projectID), "firestore.database": .string(config.database),
                "firestore.endpoint": .string(config.endpointDescription),
                "firestore.collection": .string(config.memoryCollection),
            ])
    }

    public func makeConnection() throws(MemoryError) -> StoreConnection {
        try FirestoreConnection(shared: shared)
    }

    public func statistics() -> [String: JSONValue] {
        [
            "circuit_state": .string(shared.breaker.state.rawValue),
            "retries_total": .number(Double(shared.retries.load(ordering: .relaxed))),
            "firestore_connections_open": .number(Double(shared.connectionsOpen.load(ordering: .relaxed))),
            "firestore_pool_size": .number(Double(config.poolSize)),
            "firestore_last_error": .string(shared.lastError),
            "firestore_malformed_skipped": .number(Double(shared.malformedSkipped.load(ordering: .relaxed))),
        ]
    }

    public func shutdown() {}

    /// Each gRPC attempt is a request (timed under `firestore.commit`, `firestore.runQuery`, …), each failed
    /// attempt an error, each retry a retry; the breaker's state is read from ``statistics()``.
    public func attachMetrics(_ metrics: BackendMetrics) { shared.metrics = metrics }
}
