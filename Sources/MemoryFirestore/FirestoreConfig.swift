/// Settings of the Firestore backend (SPEC §6, keys `firestore.*` and `circuit_breaker.*`).
public struct FirestoreConfig: Sendable {
    /// The Google Cloud project that holds the database. Required.
    public var projectID: String
    /// The database id; `(default)` unless the project has several.
    public var database: String = "(default)"
    /// Prefix of the collections: `{ns}_memory_items`, `{ns}_agent_data` (`default` → no prefix).
    public var namespace: String = "default"
    /// A service-account JSON key. Without it (and without an emulator) the GCE metadata server is asked.
    public var credentialsPath: String?
    /// `host:port` of the Firestore emulator: gRPC over h2c and `Authorization: Bearer owner`.
    public var emulatorHost: String?
    /// Connections to Firestore, one per worker.
    public var poolSize: Int = 10
    /// Writes per BatchWrite request (requests are also kept under 10 MiB).
    public var batchSize: Int = 400
    /// Timeout of one gRPC call (attempt); never beyond the call's deadline.
    public var requestTimeoutMs: Int = 10000
    /// Retries of one request on transient failures.
    public var maxRetries: Int = 5
    /// Consecutive failed requests that open the circuit.
    public var failureThreshold: Int = 5
    /// Seconds the circuit stays open before one probe request is let through.
    public var recoveryTimeoutS: Double = 30
    /// The GCE metadata server, for credentials when no key file is given. Overridable for tests.
    public var metadataServerURL: String = "http://169.254.169.254"

    /// Tests only: send Firestore calls here (`http://host:port`, h2c) instead of Google or the emulator.
    var endpointOverride: String?

    public init(projectID: String) {
        self.projectID = projectID
    }

    var memoryCollection: String { namespace == "default" ? "memory_items" : "\(namespace)_memory_items" }
    var agentCollection: String { namespace == "default" ? "agent_data" : "\(namespace)_agent_data" }

    /// `projects/{p}/databases/{db}`: the `database` of Commit, BatchWrite and BatchGetDocuments.
    var databasePath: String { "projects/\(projectID)/databases/\(database)" }
    /// `projects/{p}/databases/{db}/documents`: the prefix of every document name, RunQuery's `parent`.
    var documentsPath: String { databasePath + "/documents" }

    /// Firestore's gRPC endpoint: the emulator over h2c, or Google over TLS (ALPN h2).
    var endpoint: FirestoreEndpoint {
        if let endpointOverride { return FirestoreEndpoint(baseURL: endpointOverride) }
        if let emulatorHost { return FirestoreEndpoint(baseURL: "http://\(emulatorHost)") }
        return FirestoreEndpoint(baseURL: "https://firestore.googleapis.com")
    }

    /// The endpoint as health details and the start-up log name it.
    public var endpointDescription: String {
        let e = endpoint
        if emulatorHost != nil && endpointOverride == nil { return "\(e.baseURL) (emulator, h2c)" }
        return e.usesTLS ? "\(e.baseURL) (TLS, h2)" : "\(e.baseURL) (h2c)"
    }
}
