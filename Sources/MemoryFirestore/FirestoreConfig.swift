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
    /// `host:port` of the Firestore emulator: plain HTTP and `Authorization: Bearer owner`.
    public var emulatorHost: String?
    /// Connections to Firestore, one per worker.
    public var poolSize: Int = 10
    /// Writes per `batchWrite` request (requests are also kept under 10 MiB).
    public var batchSize: Int = 400
    /// Timeout of one HTTP request; never beyond the call's deadline.
    public var requestTimeoutMs: Int = 10000
    /// Retries of one request on transient failures.
    public var maxRetries: Int = 5
    /// Consecutive failed requests that open the circuit.
    public var failureThreshold: Int = 5
    /// Seconds the circuit stays open before one probe request is let through.
    public var recoveryTimeoutS: Double = 30
    /// The GCE metadata server, for credentials when no key file is given. Overridable for tests.
    public var metadataServerURL: String = "http://169.254.169.254"

    /// Tests only: send Firestore requests here instead of Google (to check auth against a local server).
    var documentsURLOverride: String?

    public init(projectID: String) {
        self.projectID = projectID
    }

    var memoryCollection: String { namespace == "default" ? "memory_items" : "\(namespace)_memory_items" }
    var agentCollection: String { namespace == "default" ? "agent_data" : "\(namespace)_agent_data" }

    /// `projects/{p}/databases/{db}/documents`: the prefix of every document name.
    var documentsPath: String { "projects/\(projectID)/databases/\(database)/documents" }

    /// The URL of `documentsPath`, on the emulator or on Google.
    var documentsURL: String {
        if let documentsURLOverride { return documentsURLOverride }
        if let emulatorHost { return "http://\(emulatorHost)/v1/\(documentsPath)" }
        return "https://firestore.googleapis.com/v1/\(documentsPath)"
    }
}
