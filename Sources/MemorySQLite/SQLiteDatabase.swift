import CSQLite3
import MemoryDomain

/// One sqlite3 connection with its cache of prepared statements. Opened `SQLITE_OPEN_NOMUTEX`: sqlite does
/// no locking of its own, so a connection must be used by one thread at a time (its worker's).
final class SQLiteDatabase {
    let handle: OpaquePointer
    let path: String
    private var statements: [String: SQLiteStatement] = [:]
    private var isClosed = false
    /// Where statements are timed (`memoryd_backend_request_duration_seconds`); nil records nothing.
    var metrics: SQLiteRequestMetrics?
    /// Dynamic SQL (history filters) could otherwise grow the cache without bound.
    private static let maxCachedStatements = 128

    /// Opens (creating if needed) the database at `path` and sets the per-connection pragmas.
    init(path: String, busyTimeoutMilliseconds: Int32) throws(MemoryError) {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let error = SQLiteResult.error(rc, db: db, "sqlite3_open_v2(\(path))")
            sqlite3_close_v2(db)
            throw error
        }
        self.handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        do throws(MemoryError) {
            try SQLiteResult.check(sqlite3_busy_timeout(db, busyTimeoutMilliseconds), db: db, "sqlite3_busy_timeout")
            // FULL: a commit returns only after the WAL is fsynced, so an acknowledged write survives kill -9
            // and power loss.
            try exec("PRAGMA synchronous = FULL", name: "pragma_synchronous")
            try exec("PRAGMA temp_store = MEMORY", name: "pragma_temp_store")
        } catch {
            sqlite3_close_v2(db)
            throw error
        }
    }

    deinit { close() }

    /// Finalizes every statement and closes the connection. Idempotent.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        for s in statements.values { s.finalize() }
        statements.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Runs SQL without results (pragmas, DDL). Not cached.
    func exec(_ sql: String, name: String) throws(MemoryError) {
        var errmsg: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errmsg)
        if rc != SQLITE_OK {
            let text = errmsg.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(errmsg)
            var error = SQLiteResult.error(rc, db: handle, "sqlite3_exec(\(name))")
            error.message = "sqlite3_exec(\(name)): \(text) (\(rc))"
            throw error
        }
    }

    /// Runs `body` with the cached statement for `sql` (prepared on first use), and resets it afterwards.
    @discardableResult
    func withStatement<T>(
        _ name: String, _ sql: String,
        _ body: (SQLiteStatement) throws(MemoryError) -> T
    ) throws(MemoryError) -> T {
        // A call after close() must fail, not hand sqlite a freed handle.
        guard !isClosed else { throw .connection("sqlite connection to \(path) is closed") }
        let statement: SQLiteStatement
        if let cached = statements[sql] {
            statement = cached
        } else {
            if statements.count >= Self.maxCachedStatements {
                for s in statements.values { s.finalize() }
                statements.removeAll()
            }
            statement = try SQLiteStatement(db: handle, name: name, sql: sql)
            statements[sql] = statement
        }
        defer { statement.reset() }
        guard let metrics else { return try body(statement) }
        return try metrics.measure(name) { () throws(MemoryError) -> T in try body(statement) }
    }

    /// Runs `body` in a write transaction (`BEGIN IMMEDIATE`, so the write lock is taken up front and a
    /// busy database fails at the start, not at the commit). Rolls back when `body` throws.
    func transaction<T>(_ body: () throws(MemoryError) -> T) throws(MemoryError) -> T {
        try withStatement("begin", "BEGIN IMMEDIATE") { s throws(MemoryError) in try s.run() }
        let result: T
        do throws(MemoryError) {
            result = try body()
            try withStatement("commit", "COMMIT") { s throws(MemoryError) in try s.run() }
        } catch {
            rollback()
            throw error
        }
        return result
    }

    /// Rolls back the open transaction, if any (sqlite may already have rolled it back itself).
    func rollback() {
        guard sqlite3_get_autocommit(handle) == 0 else { return }
        _ = try? withStatement("rollback", "ROLLBACK") { s throws(MemoryError) in try s.run() }
    }

    /// True while a transaction is open.
    var inTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }
}
