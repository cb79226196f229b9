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
/// all connections.
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
    let busyTimeoutMilliseconds: Int32 = 5000

    // sqlite allows one writer at a time anyway; holding this around "transaction + index update" makes the
    // index see changes in commit order and keeps our own connections from waiting on each other's locks.
    private let writeLock = Lock()
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
    /// - Throws: `ValidationError` for a bad namespace, `StorageError` when the directory or database
    ///   cannot be created or opened, or the schema is newer than this build knows.
    public init(dataDirectory: String, namespace: String, limits: Limits, batchSize: Int = 400, logger: Logger)
        throws(MemoryError)
    {
        guard Validation.isValidID(namespace, maxBytes: 128), !namespace.contains(":") else {
            throw .validation(
                "namespace \(Validation.show(namespace)) is not valid: use 1 to 128 bytes of [A-Za-z0-9_.-]")
        }
        try Self.makeDirectory(dataDirectory)
        self.path = (dataDirectory.hasSuffix("/") ? dataDirectory : dataDirectory + "/") + namespace + ".sqlite3"
        self.limits = limits
        self.batchSize = max(1, batchSize)
        self.logger = logger
        self.index = EmbeddingIndex(dimension: limits.embeddingDimension)
        let db = try SQLiteDatabase(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        defer { db.close() }
        try Schema.migrate(db)
        logger.debug(
            "sqlite database open", metadata: ["sqlite.path": "\(path)", "sqlite.schema_version": "\(Schema.version)"])
    }

    /// Opens a new sqlite connection for one worker.
    public func makeConnection() throws(MemoryError) -> StoreConnection {
        let shutDown = stateLock.withLock { isShutDown }
        guard !shutDown else { throw .connection("sqlite backend for \(path) is shut down") }
        let db = try SQLiteDatabase(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        stateLock.withLock { openConnections += 1 }
        return SQLiteConnection(backend: self, db: db)
    }

    func connectionClosed() { stateLock.withLock { openConnections -= 1 } }

    public func statistics() -> [String: JSONValue] {
        let connections = stateLock.withLock { openConnections }
        return [
            "connection_pool_size": .number(Double(connections)),
            "sqlite_connections": .number(Double(connections)),
            "sqlite_path": .string(path),
            "indexed_users": .number(Double(index.userCount)),
            "indexed_vectors": .number(Double(index.vectorCount)),
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
                let db = try SQLiteDatabase(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
                defer { db.close() }
                try db.exec("PRAGMA wal_checkpoint(TRUNCATE)", name: "wal_checkpoint")
            } catch {
                logger.debug("sqlite checkpoint at shutdown failed", metadata: ["error": "\(error.message)"])
            }
        }
        index.removeAll()
    }

    // MARK: - Used by connections

    /// Runs `body` in a write transaction, then applies its index changes, all under the writer lock.
    func write<T>(_ db: SQLiteDatabase, _ body: () throws(MemoryError) -> (T, [IndexChange])) throws(MemoryError) -> T {
        try writeLock.withLock { () throws(MemoryError) -> T in
            let (result, changes) = try db.transaction(body)
            index.apply(changes)
            return result
        }
    }

    /// Runs `body` (which manages its own transactions) under the writer lock, e.g. a batch that may
    /// roll back and continue.
    func withWriteLock<T>(_ body: () throws(MemoryError) -> T) throws(MemoryError) -> T {
        try writeLock.withLock(body)
    }

    /// A user's vectors, loaded on first use. Loading holds the writer lock so no commit can slip between
    /// the load's read and the index install.
    func vectors(for userID: String, load: () throws(MemoryError) -> UserVectors) throws(MemoryError) -> UserVectors {
        if let v = index.vectors(for: userID) { return v }
        return try writeLock.withLock { () throws(MemoryError) -> UserVectors in
            if let v = index.vectors(for: userID) { return v }
            let v = try load()
            index.install(v, for: userID)
            return v
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
