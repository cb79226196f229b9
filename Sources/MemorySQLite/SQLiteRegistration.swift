import MemoryDomain

#if canImport(Glibc)
import Glibc
#endif

extension SQLiteBackend {
    /// The sqlite backend as the daemon sees it: its `[sqlite]` keys, its defaults and its factory.
    public static let registration = BackendRegistration(
        name: "sqlite",
        summary: "embedded: one sqlite file per namespace under data_dir (the default)",
        keys: [
            ConfigKey(
                "sqlite.batch_size", .integer(1...10_000), default: .integer(400),
                help: "rows per transaction for AddMemoryItems and cleanup")
        ],
        // sqlite work is CPU and disk on this host: more threads than cores only queue on the same locks.
        defaultWorkers: { _ in max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) },
        validate: { config throws(ConfigError) in
            guard !config.dataDir.isEmpty else { throw ConfigError(key: "data_dir", "must not be empty") }
        },
        open: { config, logger in
            try SQLiteBackend(
                dataDirectory: config.dataDir, namespace: config.namespace, limits: config.limits,
                batchSize: config.integer("sqlite.batch_size"), logger: logger)
        })
}
