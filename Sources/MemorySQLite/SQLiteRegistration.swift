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
                help: "rows per transaction for AddMemoryItems and cleanup"),
            ConfigKey(
                "sqlite.index_memory_mb", .integer(0...(1 << 20)),
                default: .integer(SQLiteBackend.defaultIndexMemoryMB),
                help: "the search index's memory budget; least recently searched users are evicted, a user over it "
                    + "alone is searched by streaming from the database"),
            ConfigKey(
                "sqlite.vector_kernel", .string, default: .string("auto"),
                help: "the scan kernels: auto (the widest this CPU runs), portable, avx2 or avx512"),
        ],
        // sqlite work is CPU and disk on this host: more threads than cores only queue on the same locks.
        defaultWorkers: { _ in max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) },
        validate: { config throws(ConfigError) in
            guard !config.dataDir.isEmpty else { throw ConfigError(key: "data_dir", "must not be empty") }
            let kernel = config.string("sqlite.vector_kernel")
            do throws(MemoryError) { _ = try VectorKernels.named(kernel) } catch {
                throw ConfigError(key: "sqlite.vector_kernel", error.message)
            }
        },
        open: { config, logger in
            try SQLiteBackend(
                dataDirectory: config.dataDir, namespace: config.namespace, limits: config.limits,
                batchSize: config.integer("sqlite.batch_size"), indexMemoryMB: config.integer("sqlite.index_memory_mb"),
                vectorKernel: config.string("sqlite.vector_kernel"), logger: logger)
        },
        preflight: { config, _ in
            directoryProblem(config.dataDir).map { [ConfigFinding(.error, key: "data_dir", $0)] } ?? []
        })

    /// Why `path` cannot hold the databases, or nil when it can: it is a writable directory, or the nearest
    /// existing ancestor is one where it can be created. Creates nothing.
    static func directoryProblem(_ path: String) -> String? {
        var existing = path
        while true {
            var st = stat()
            if stat(existing, &st) == 0 {
                guard st.st_mode & S_IFMT == S_IFDIR else {
                    return existing == path
                        ? "\(path) exists and is not a directory"
                        : "\(existing) is not a directory, so \(path) cannot be created"
                }
                guard access(existing, W_OK | X_OK) == 0 else {
                    return existing == path
                        ? "\(path) is not writable by uid \(geteuid())"
                        : "\(path) does not exist and \(existing) is not writable by uid \(geteuid()) to create it"
                }
                return nil
            }
            guard let slash = existing.lastIndex(of: "/"), slash != existing.startIndex else {
                return existing.hasPrefix("/") || access(".", W_OK) == 0 ? nil : "\(path) cannot be created here"
            }
            existing = String(existing[..<slash])
        }
    }
}
