import MemoryDomain

extension FirestoreBackend {
    /// The Firestore backend as the daemon sees it: the `[firestore]` and `[circuit_breaker]` keys (SPEC §6),
    /// the standard Google variables, `memoryd`'s flags, its defaults and its factory.
    public static let registration = BackendRegistration(
        name: "firestore",
        aliases: ["firestore_v2"],
        summary: "Google Cloud Firestore (or its emulator); firestore_v2 is the original system's name for it",
        keys: [
            ConfigKey(
                "firestore.project_id", .string, default: .string(""),
                help: "the Google Cloud project (required; $GOOGLE_CLOUD_PROJECT)"),
            ConfigKey("firestore.database", .string, default: .string("(default)"), help: "the database id"),
            ConfigKey(
                "firestore.credentials_path", .string, default: .string(""),
                help: "service-account key ($GOOGLE_APPLICATION_CREDENTIALS); else the GCE metadata server"),
            ConfigKey(
                "firestore.emulator_host", .string, default: .string(""),
                help: "host:port of the Firestore emulator ($FIRESTORE_EMULATOR_HOST)"),
            ConfigKey(
                "firestore.connection_pool_size", .integer(1...256), default: .integer(10),
                help: "connections to Firestore = workers, when workers is 0"),
            ConfigKey(
                "firestore.batch_size", .integer(1...10_000), default: .integer(400),
                help: "writes per BatchWrite request"),
            ConfigKey(
                "firestore.request_timeout_ms", .integer(1...600_000), default: .integer(10_000),
                help: "one request's timeout, never past the call's deadline"),
            ConfigKey(
                "firestore.max_retries", .integer(0...100), default: .integer(5),
                help: "retries of a request on transient failures"),
            ConfigKey(
                "circuit_breaker.failure_threshold", .integer(1...1_000_000), default: .integer(5),
                help: "consecutive failed requests that open the circuit"),
            ConfigKey(
                "circuit_breaker.recovery_timeout_s", .number(0.001...86_400), default: .number(30),
                help: "seconds the circuit stays open before one probe"),
        ],
        standardEnvironment: [
            ("GOOGLE_CLOUD_PROJECT", "firestore.project_id"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "firestore.credentials_path"),
            ("FIRESTORE_EMULATOR_HOST", "firestore.emulator_host"),
        ],
        flags: [
            ConfigFlag("project-id", key: "firestore.project_id", valueName: "id", help: "Firestore project"),
            ConfigFlag(
                "credentials-path", key: "firestore.credentials_path", valueName: "file",
                help: "service-account key file"),
            ConfigFlag(
                "emulator-host", key: "firestore.emulator_host", valueName: "host:port",
                help: "Firestore emulator"),
            ConfigFlag(
                "connection-pool-size", key: "firestore.connection_pool_size", valueName: "n",
                help: "Firestore connections (= workers)"),
            ConfigFlag("batch-size", key: "firestore.batch_size", valueName: "n", help: "writes per Firestore request"),
        ],
        defaultWorkers: { config in config.integer("firestore.connection_pool_size") },
        validate: { config throws(ConfigError) in
            guard !config.string("firestore.project_id").isEmpty else {
                throw ConfigError(
                    key: "firestore.project_id",
                    "is required for the firestore backend (or set GOOGLE_CLOUD_PROJECT, or --project-id)")
            }
        },
        open: { config, logger in
            try FirestoreBackend(config: FirestoreConfig(config), limits: config.limits, logger: logger)
        },
        // One health probe (a read of a document that never exists): Firestore may come up after memoryd,
        // so an unreachable one is a warning.
        preflight: { config, logger in
            do {
                let backend = try FirestoreBackend(
                    config: FirestoreConfig(config), limits: config.limits, logger: logger)
                defer { backend.shutdown() }
                let connection = try backend.makeConnection()
                defer { connection.close() }
                let health = connection.health(context: CallContext(deadline: .after(milliseconds: 5000)))
                guard health.status == .unhealthy else { return [] }
                let key =
                    config.string("firestore.emulator_host").isEmpty
                    ? "firestore.project_id" : "firestore.emulator_host"
                return [ConfigFinding(.warning, key: key, "\(health.reason); memoryd would start and retry")]
            } catch {
                return [ConfigFinding(.error, key: "backend", "cannot open the firestore backend: \(error)")]
            }
        },
        legacyFormats: FirestoreBackend.legacyFormats)
}

extension FirestoreConfig {
    /// The backend's settings from the daemon's configuration.
    public init(_ c: DaemonConfig) {
        self.init(projectID: c.string("firestore.project_id"))
        database = c.string("firestore.database")
        namespace = c.namespace
        credentialsPath = c.string("firestore.credentials_path").isEmpty ? nil : c.string("firestore.credentials_path")
        emulatorHost = c.string("firestore.emulator_host").isEmpty ? nil : c.string("firestore.emulator_host")
        // Every worker owns one backend connection, so the pool size is the worker count.
        poolSize = c.workerCount
        batchSize = c.integer("firestore.batch_size")
        requestTimeoutMs = c.integer("firestore.request_timeout_ms")
        maxRetries = c.integer("firestore.max_retries")
        failureThreshold = c.integer("circuit_breaker.failure_threshold")
        recoveryTimeoutS = c.number("circuit_breaker.recovery_timeout_s")
    }
}
