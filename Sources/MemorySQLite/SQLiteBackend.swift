import Logging
import MemoryDomain
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The embedded sqlite backend: one database file per namespace (`<dataDirectory>/<namespace>.sqlite3`, WAL,
/// `synchronous=FULL`), one sqlite connection per worker, and an in-memory exact embedding index shared by
/// all connections, bounded by `indexMemoryMB` (users over it alone are searched by streaming from sqlite).
///
/// Every call is bounded by its deadline: waits for the database lock, for this daemon's other writers and
/// for another search's load, and long statements, end in DEADLINE_EXCEEDED; a write is never committed
/// after its deadline.
///
/// `@unchecked Sendable`: its mutable state (connection count, shutdown flag) is guarded by `stateLock`;
/// the index guards itself; writers are serialized by `writeLock`; everything else is immutable.
public final class SQLiteBackend: StoreBackend, @unchecked Sendable {
    public let name = "sqlite"
    /// The database file.
    public let path: String
    public let limits: Limits
    /// Rows per transaction for AddMemoryItems and cleanup.
    public let batchSize: Int
    let logger: Logger
    let index: EmbeddingIndex

    /// The default of `sqlite.index_memory_mb`: 512 MiB holds about 160,000 768-d embeddings (3.2 KB each
    /// with their ids), e.g. one user of 100,000 items plus recent others, and is an eighth of a small 4 GiB
    /// host; the rest of the daemon needs ~25 MiB. Larger users are still searched exactly, by streaming.
    public static let defaultIndexMemoryMB = 512

    // sqlite allows one writer at a time anyway; holding this around "transaction + index update" makes the
    // index see changes in commit order and keeps our own connections from waiting on each other's locks.
    private let writeLock = DeadlineLock()
    private let stateLock = Lock()
    private var openConnections = 0
    private var isShutDown = false
    /// Set once by `attachMetrics` before the first connection (StoreBackend's contract), then only read.
    var metrics: BackendMetrics?

    /// Opens (creating if needed) the namespace's database and brings its schema up to date.
    /// - Parameters:
    ///   - dataDirectory: created with mode 0750 when missing.
    ///   - namespace: the file name stem; `[A-Za-z0-9_.-]`, at most 128 bytes.
    ///   - limits: `embeddingDimension` sizes the search index.
    ///   - batchSize: rows per transaction for batch writes and cleanup.
    ///   - indexMemoryMB: the search index's budget in MiB (`sqlite.index_memory_mb`): least recently searched
    ///     users are dropped beyond it; a user who alone exceeds it is searched by streaming from the database.
    ///   - vectorKernel: the scan kernels (`sqlite.vector_kernel`): `auto` (the widest this CPU runs),
    ///     `portable`, `avx2` or `avx512`.
    /// - Throws: `ValidationError` for a bad namespace, `StorageError` when the directory or database
    ///   cannot be created or opened, or the schema is newer than this build knows.
    public convenience init(
        dataDirectory: String, namespace: String, limits: Limits, batchSize: Int = 400,
        indexMemoryMB: Int = SQLiteBackend.defaultIndexMemoryMB, vectorKernel: String = "auto", logger: Logger
    ) throws(MemoryError) {
        guard indexMemoryMB >= 0, indexMemoryMB <= 1 << 30 else {
            throw .validation("index_memory_mb is \(indexMemoryMB); use 0 to \(1 << 30)")
        }
        try self.init(
            dataDirectory: dataDirectory, namespace: namespace, limits: limits, batchSize: batchSize,
            indexBudgetBytes: indexMemoryMB << 20, kernels: try VectorKernels.named(vectorKernel), logger: logger)
    }

    /// The same with the index budget in bytes (tests use budgets of a few blocks).
    init(
        dataDirectory: String, namespace: String, limits: Limits, batchSize: Int, indexBudgetBytes: Int,
        kernels: VectorKernels = .best, logger: Logger
    ) throws(MemoryError) {
        guard Validation.isValidID(namespace, maxBytes: 128), !namespace.contains(":") else {
            throw .validation(
                "namespace \(Validation.show(namespace)) is not valid: use 1 to 128 bytes of [A-Za-z0-9_.-]")
        }
        try Self.makeDirectory(dataDirectory)
        self.path = (dataDirectory.hasSuffix("/") ? dataDirectory : dataDirectory + "/") + namespace + ".sqlite3"
        self.limits = limits
        self.batchSize = max(1, batchSize)
        self.logger = logger
        self.index = EmbeddingIndex(
            dimension: limits.embeddingDimension, budgetBytes: indexBudgetBytes, kernels: kernels)
        let db = try SQLiteDatabase(path: path)
        defer { db.close() }
        try Schema.migrate(db)
        logger.debug(
            "sqlite database open", metadata: ["sqlite.path": "\(path)", "sqlite.schema_version": "\(Schema.version)"])
    }

    /// Opens a new sqlite connection for one worker.
    public func makeConnection() throws(MemoryError) -> StoreConnection {
        let shutDown = stateLock.withLock { isShutDown }
        guard !shutDown else { throw .connection("sqlite backend for \(path) is shut down") }
        let db = try SQLiteDatabase(path: path)
        stateLock.withLock { openConnections += 1 }
        return SQLiteConnection(backend: self, db: db)
    }

    func connectionClosed() { stateLock.withLock { openConnections -= 1 } }

    public func statistics() -> [String: JSONValue] {
        let connections = stateLock.withLock { openConnections }
        let s = index.statistics
        return [
            "connection_pool_size": .number(Double(connections)),
            "sqlite_connections": .number(Double(connections)),
            "sqlite_path": .string(path),
            "indexed_users": .number(Double(s.users)),
            "indexed_vectors": .number(Double(s.vectors)),
            "index_bytes": .number(Double(s.bytes)),
            "index_budget_bytes": .number(Double(index.budgetBytes)),
            "index_users_loading": .number(Double(s.loading)),
            "index_loads": .number(Double(s.loads)),
            "index_evictions": .number(Double(s.evictions)),
            "index_streamed_searches": .number(Double(s.streamedSearches)),
            "vector_kernel": .string(index.kernels.level.rawValue),
        ]
    }

    /// Checkpoints the WAL into the database file and drops the index. Connections are closed by then.
    public func shutdown() {
        let first = stateLock.withLock { () -> Bool in
            defer { isShutDown = true }
            return !isShutDown
        }
        guard first else { return }
        writeLock.withLock {
            do throws(MemoryError) {
                let db = try SQLiteDatabase(path: path)
                defer { db.close() }
                try db.exec("PRAGMA wal_checkpoint(TRUNCATE)", name: "wal_checkpoint")
            } catch {
                logger.debug("sqlite checkpoint at shutdown failed", metadata: ["error": "\(error.message)"])
            }
        }
        index.removeAll()
    }

    // MARK: - Used by connections

    /// Runs `body` in a write transaction, then applies its index changes, all under the writer lock. Every
    /// wait (the writer lock, the database lock, statements) ends at the call's deadline, and nothing is
    /// committed after it.
    func write<T>(_ db: SQLiteDatabase, _ context: CallContext, _ body: () throws(MemoryError) -> (T, [IndexChange]))
        throws(MemoryError) -> T
    {
        try db.withDeadline(context.deadline) { () throws(MemoryError) -> T in
            let outcome = try writeLock.withLock(until: context.deadline) { () throws(MemoryError) -> T in
                let (result, changes) = try db.transaction(body)
                index.apply(changes)
                return result
            }
            guard let outcome else { throw db.deadlineError("while waiting for another write of this daemon") }
            return outcome
        }
    }

    /// `mkdir -p` with mode 0750 for what it creates.
    private static func makeDirectory(_ path: String) throws(MemoryError) {
        guard !path.isEmpty else { throw .validation("data directory is empty") }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if mkdir(prefix, 0o750) != 0 && errno != EEXIST {
                throw .storage(
                    "cannot create data directory \(Validation.show(prefix)): \(String(cString: strerror(errno)))")
            }
            prefix += "/"
        }
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw .storage("data directory \(Validation.show(path)) is not a directory")
        }
    }
}
