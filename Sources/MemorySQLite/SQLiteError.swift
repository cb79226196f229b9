import CSQLite3
import MemoryDomain

/// The one funnel for sqlite result codes: every failing call becomes a `MemoryError` that names the call,
/// e.g. `sqlite3_step(insert_item): database is locked (5)`.
enum SQLiteResult {
    /// Throws unless `rc` is one of `accepted` (default: `SQLITE_OK`).
    @inline(__always)
    static func check(
        _ rc: Int32, db: OpaquePointer?, _ call: @autoclosure () -> String,
        accepted: Int32 = SQLITE_OK
    ) throws(MemoryError) {
        if rc == accepted { return }
        throw error(rc, db: db, call())
    }

    /// Maps a result code to the error hierarchy of SPEC §3:
    /// busy/locked (after the busy timeout) → ConnectionError, constraint → DuplicateError,
    /// I/O, corruption, full disk, permissions → StorageError, anything else → OperationError.
    static func error(_ rc: Int32, db: OpaquePointer?, _ call: String) -> MemoryError {
        var text = db.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? ""
        if text.isEmpty || text == "not an error" { text = String(cString: sqlite3_errstr(rc)) }
        let message = "\(call): \(text) (\(rc))"
        let operation = "sqlite." + (call.split(separator: "(").first.map(String.init) ?? call)
        switch rc & 0xff {
        case SQLITE_BUSY, SQLITE_LOCKED:
            return .connection(message, operation: operation)
        case SQLITE_CONSTRAINT:
            return .duplicate(message)
        case SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB, SQLITE_READONLY,
            SQLITE_PERM, SQLITE_NOMEM, SQLITE_PROTOCOL:
            return .storage(message, operation: operation)
        default:
            return .operation(operation, message)
        }
    }
}
