import CSQLite3
import MemoryDomain

/// A prepared statement, prepared once per connection and reused. Not thread-safe: it belongs to one
/// ``SQLiteDatabase``, which belongs to one worker thread at a time.
final class SQLiteStatement {
    /// A short name for error messages (`insert_item`).
    let name: String
    let handle: OpaquePointer
    private let db: OpaquePointer
    /// The owner (which keeps its statements, hence unowned): its deadline decides what a failed step means.
    private unowned let database: SQLiteDatabase

    init(database: SQLiteDatabase, name: String, sql: String) throws(MemoryError) {
        let db = database.handle
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            sqlite3_finalize(stmt)
            throw SQLiteResult.error(rc, db: db, "sqlite3_prepare_v3(\(name))")
        }
        self.name = name
        self.handle = stmt
        self.db = db
        self.database = database
    }

    func finalize() { sqlite3_finalize(handle) }

    /// Ready for the next use: resets and clears bindings. Always called after a use, so that no statement
    /// keeps a read snapshot of the WAL open.
    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    // MARK: - Binding (1-based indexes, as sqlite's)

    func bind(_ index: Int32, _ value: String) throws(MemoryError) {
        var value = value
        let rc = value.withUTF8 { buf -> Int32 in
            // A nil pointer would bind NULL; an empty string must stay an empty TEXT.
            guard let base = buf.baseAddress, buf.count > 0 else {
                return sqlite3_bind_text(handle, index, "", 0, csqlite_transient())
            }
            return base.withMemoryRebound(to: CChar.self, capacity: buf.count) {
                sqlite3_bind_text(handle, index, $0, Int32(buf.count), csqlite_transient())
            }
        }
        try SQLiteResult.check(rc, db: db, "sqlite3_bind_text(\(name), \(index))")
    }

    func bind(_ index: Int32, _ value: Int64) throws(MemoryError) {
        try SQLiteResult.check(
            sqlite3_bind_int64(handle, index, value), db: db, "sqlite3_bind_int64(\(name), \(index))")
    }

    func bind(_ index: Int32, _ value: Int64?) throws(MemoryError) {
        if let value { try bind(index, value) } else { try bindNull(index) }
    }

    func bind(_ index: Int32, _ value: Double) throws(MemoryError) {
        try SQLiteResult.check(
            sqlite3_bind_double(handle, index, value), db: db, "sqlite3_bind_double(\(name), \(index))")
    }

    func bindNull(_ index: Int32) throws(MemoryError) {
        try SQLiteResult.check(sqlite3_bind_null(handle, index), db: db, "sqlite3_bind_null(\(name), \(index))")
    }

    /// An embedding as a BLOB of little-endian float32; an empty one as NULL.
    func bind(_ index: Int32, embedding: [Float]) throws(MemoryError) {
        if embedding.isEmpty { return try bindNull(index) }
        let bytes = EmbeddingCodec.encode(embedding)
        let rc = bytes.withUnsafeBytes {
            sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), csqlite_transient())
        }
        try SQLiteResult.check(rc, db: db, "sqlite3_bind_blob(\(name), \(index))")
    }

    // MARK: - Stepping

    /// Advances to the next row: true when there is one, false when done.
    func step() throws(MemoryError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw database.stepError(rc, statement: name)
        }
    }

    /// Runs a statement that returns no rows; returns the number of rows it changed.
    @discardableResult
    func run() throws(MemoryError) -> Int {
        while try step() {}
        return Int(sqlite3_changes(db))
    }

    // MARK: - Columns (0-based indexes, as sqlite's)

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func string(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }

    /// The raw bytes of a BLOB column, valid until the next step or reset.
    func blob(_ column: Int32) -> UnsafeRawBufferPointer {
        guard let p = sqlite3_column_blob(handle, column) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: p, count: Int(sqlite3_column_bytes(handle, column)))
    }
}

/// Embeddings on disk: little-endian float32, `4 × dimension` bytes.
enum EmbeddingCodec {
    static func encode(_ v: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: v.count * 4)
        out.withUnsafeMutableBytes { raw in
            for (i, f) in v.enumerated() {
                raw.storeBytes(of: f.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
            }
        }
        return out
    }

    /// Decodes into `out`; false when the byte count is not a whole number of floats.
    static func decode(_ bytes: UnsafeRawBufferPointer, into out: inout [Float]) -> Bool {
        guard bytes.count % 4 == 0 else { return false }
        let n = bytes.count / 4
        out.reserveCapacity(out.count + n)
        for i in 0..<n {
            out.append(
                Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))))
        }
        return true
    }
}
