import CSQLite3
import MemoryDomain
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// One sqlite3 connection with its cache of prepared statements. Opened `SQLITE_OPEN_NOMUTEX`: sqlite does
/// no locking of its own, so a connection must be used by one thread at a time (its worker's).
///
/// Every wait inside sqlite is bounded by the deadline of the call being served (``withDeadline(_:_:)``):
/// a busy handler retries a locked database until then, a progress handler interrupts a statement still
/// running then, and both turn into the call's DEADLINE_EXCEEDED. Outside a call the bound is
/// ``idleBusyTimeout`` for locks and none for statements.
final class SQLiteDatabase {
    let handle: OpaquePointer
    let path: String
    /// Shared with the busy and progress handlers, which run inside sqlite calls on this thread.
    let limits: UnsafeMutablePointer<WaitLimits>
    private var statements: [String: SQLiteStatement] = [:]
    private var isClosed = false
    /// Where statements are timed (`memoryd_backend_request_duration_seconds`); nil records nothing.
    var metrics: SQLiteRequestMetrics?
    /// Dynamic SQL (history filters) could otherwise grow the cache without bound.
    private static let maxCachedStatements = 128

    /// Opens (creating if needed) the database at `path` and sets the per-connection pragmas.
    init(path: String, busyTimeoutMilliseconds: Int32 = SQLiteDatabase.idleBusyTimeout) throws(MemoryError) {
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
        self.limits = .allocate(capacity: 1)
        limits.initialize(to: WaitLimits(idleBusyTimeoutNanos: UInt64(max(0, busyTimeoutMilliseconds)) * 1_000_000))
        sqlite3_extended_result_codes(db, 1)
        do throws(MemoryError) {
            try SQLiteResult.check(
                sqlite3_busy_handler(db, { context, attempts in WaitLimits.busy(context, attempts) }, limits), db: db,
                "sqlite3_busy_handler")
            // Every 1000 virtual-machine steps (a few microseconds): cheap next to the statement, fine-grained
            // enough to stop a long scan within a millisecond of the deadline.
            sqlite3_progress_handler(db, 1000, { context in WaitLimits.progress(context) }, limits)
            // FULL: a commit returns only after the WAL is fsynced, so an acknowledged write survives kill -9
            // and power loss.
            try exec("PRAGMA synchronous = FULL", name: "pragma_synchronous")
            try exec("PRAGMA temp_store = MEMORY", name: "pragma_temp_store")
        } catch {
            sqlite3_close_v2(db)
            limits.deallocate()
            throw error
        }
    }

    deinit {
        close()
        limits.deallocate()
    }

    /// How long a lock is waited for outside a call (opening, migrating, checkpointing at shutdown).
    static let idleBusyTimeout: Int32 = 5000

    /// Runs `body` with every sqlite wait bounded by `deadline`; a busy or interrupted statement then throws
    /// the call's DEADLINE_EXCEEDED. Nests: an inner call keeps the earlier of the two deadlines.
    func withDeadline<T>(_ deadline: Deadline, _ body: () throws(MemoryError) -> T) throws(MemoryError) -> T {
        let outer = limits.pointee.deadline
        limits.pointee.deadline = min(outer, deadline)
        defer { limits.pointee.deadline = outer }
        if limits.pointee.deadline.hasPassed { throw deadlineError("before it reached sqlite") }
        return try body()
    }

    /// The deadline in force (`.distantFuture` outside a call).
    var deadline: Deadline { limits.pointee.deadline }

    /// The call's DEADLINE_EXCEEDED, saying where it was.
    func deadlineError(_ what: String) -> MemoryError {
        .call(.deadlineExceeded, "sqlite: the call's deadline passed \(what)")
    }

    /// Maps a failed step: busy or interrupted past the deadline is the call's DEADLINE_EXCEEDED.
    func stepError(_ rc: Int32, statement: String) -> MemoryError {
        let primary = rc & 0xff
        if (primary == SQLITE_BUSY || primary == SQLITE_INTERRUPT) && limits.pointee.deadline.hasPassed {
            return deadlineError(
                primary == SQLITE_BUSY
                    ? "while waiting for the database lock (\(statement))" : "while running \(statement)")
        }
        return SQLiteResult.error(rc, db: handle, "sqlite3_step(\(statement))")
    }

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
            statement = try SQLiteStatement(database: self, name: name, sql: sql)
            statements[sql] = statement
        }
        defer { statement.reset() }
        guard let metrics else { return try body(statement) }
        return try metrics.measure(name) { () throws(MemoryError) -> T in try body(statement) }
    }

    /// Runs `body` in a write transaction (`BEGIN IMMEDIATE`, so the write lock is taken up front and a
    /// busy database fails at the start, not at the commit). Rolls back when `body` throws.
    ///
    /// Commits only before the deadline: past it the transaction is rolled back and the call gets
    /// DEADLINE_EXCEEDED, so a call answered DEADLINE_EXCEEDED has not committed unless its COMMIT began before
    /// the deadline (it is not interrupted once begun: the one window PROTOCOL.md describes).
    func transaction<T>(_ body: () throws(MemoryError) -> T) throws(MemoryError) -> T {
        try withStatement("begin", "BEGIN IMMEDIATE") { s throws(MemoryError) in try s.run() }
        let result: T
        do throws(MemoryError) {
            result = try body()
            if limits.pointee.deadline.hasPassed { throw deadlineError("before the commit; rolled back") }
            limits.pointee.interruptible = false
            defer { limits.pointee.interruptible = true }
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
        limits.pointee.interruptible = false
        defer { limits.pointee.interruptible = true }
        _ = try? withStatement("rollback", "ROLLBACK") { s throws(MemoryError) in try s.run() }
    }

    /// True while a transaction is open.
    var inTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }
}

/// What the busy and progress handlers of one connection consult. Lives at a fixed address (the handlers get
/// a raw pointer to it) and is touched only by the connection's thread.
struct WaitLimits {
    /// The call's deadline; `.distantFuture` outside a call.
    var deadline = Deadline.distantFuture
    /// False while COMMIT or ROLLBACK runs: those are never interrupted half-way.
    var interruptible = true
    /// The busy wait outside a call.
    let idleBusyTimeoutNanos: UInt64

    init(idleBusyTimeoutNanos: UInt64) { self.idleBusyTimeoutNanos = idleBusyTimeoutNanos }

    /// sqlite's busy handler: non-zero to try the lock again, 0 to give up (the statement fails with
    /// SQLITE_BUSY). Sleeps 1, 2, 5, 10 ms… as sqlite's own timeout does, never past the deadline.
    static func busy(_ context: UnsafeMutableRawPointer?, _ attempts: Int32) -> Int32 {
        guard let limits = context?.assumingMemoryBound(to: WaitLimits.self) else { return 0 }
        var sleep = backoffNanos(Int(attempts))
        if limits.pointee.deadline == .distantFuture {
            let slept = (0..<Int(attempts)).reduce(UInt64(0)) { $0 + backoffNanos($1) }
            guard slept < limits.pointee.idleBusyTimeoutNanos else { return 0 }
        } else {
            let now = monotonicNanos(), end = limits.pointee.deadline.uptimeNanos
            guard now < end else { return 0 }
            sleep = min(sleep, end - now)
        }
        var ts = timespec(tv_sec: Int(sleep / 1_000_000_000), tv_nsec: Int(sleep % 1_000_000_000))
        nanosleep(&ts, nil)
        return 1
    }

    private static func backoffNanos(_ attempt: Int) -> UInt64 {
        let ms: [UInt64] = [1, 2, 5, 10, 15, 20, 25]
        return (attempt < ms.count ? ms[attempt] : 25) * 1_000_000
    }

    /// sqlite's progress handler: non-zero interrupts the running statement (SQLITE_INTERRUPT).
    static func progress(_ context: UnsafeMutableRawPointer?) -> Int32 {
        guard let limits = context?.assumingMemoryBound(to: WaitLimits.self) else { return 0 }
        return limits.pointee.interruptible && limits.pointee.deadline.hasPassed ? 1 : 0
    }
}
