import MemoryDomain
import MemoryUtilities

/// One worker's connection: its own sqlite3 handle and statement cache, the backend's shared index and
/// writer lock. Used by one thread at a time (``StoreConnection``'s contract).
final class SQLiteConnection: StoreConnection {
    let backend: SQLiteBackend
    let db: SQLiteDatabase
    private var isClosed = false

    init(backend: SQLiteBackend, db: SQLiteDatabase) {
        self.backend = backend
        self.db = db
        db.metrics = backend.metrics.map(SQLiteRequestMetrics.init)
    }

    deinit { close() }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        db.close()
        backend.connectionClosed()
    }

    // MARK: - Memory items

    func addMemoryItem(_ item: MemoryItem, upsert: Bool, context: CallContext) throws(MemoryError) {
        try backend.write(db, context) { () throws(MemoryError) -> ((), [IndexChange]) in
            ((), try store(item, upsert: upsert, now: context.now.microseconds))
        }
    }

    func addMemoryItems(_ items: [MemoryItem], upsert: Bool, context: CallContext) throws(MemoryError) -> [MemoryError?]
    {
        var results = [MemoryError?](repeating: nil, count: items.count)
        let now = context.now.microseconds
        var start = 0
        while start < items.count {
            let end = min(start + backend.batchSize, items.count)
            do throws(MemoryError) {
                try backend.write(db, context) { () throws(MemoryError) -> ((), [IndexChange]) in
                    var changes: [IndexChange] = []
                    for i in start..<end {
                        do throws(MemoryError) {
                            changes += try store(items[i], upsert: upsert, now: now)
                        } catch  where error.type == .duplicate {
                            // The item's own problem: the rest of the batch goes on.
                            results[i] = error
                        }
                    }
                    return ((), changes)
                }
            } catch  where error.code == .deadlineExceeded {
                // The call is over (earlier batches stay committed: PROTOCOL.md, deadlines).
                throw error
            } catch {
                // The transaction failed as a whole (I/O, busy, ...): none of its items were stored.
                for i in start..<end where results[i] == nil { results[i] = error }
            }
            start = end
        }
        return results
    }

    /// Inserts or replaces one item inside the caller's transaction; returns the index changes to apply
    /// after the commit. An expired row with the same id counts as absent. Adding an item whose id is taken
    /// by the same item (everything equal but the timestamp: a retry after DEADLINE_EXCEEDED or a lost
    /// answer, whose first attempt committed) succeeds and keeps the stored row.
    private func store(_ item: MemoryItem, upsert: Bool, now: Int64) throws(MemoryError) -> [IndexChange] {
        let existingUser = try db.withStatement(
            "find_item_owner",
            "SELECT user_id, expiration FROM memory_items WHERE id = ?1"
        ) { s throws(MemoryError) -> (String, Bool)? in
            try s.bind(1, item.id)
            guard try s.step() else { return nil }
            let expired = s.optionalInt64(1).map { $0 <= now } ?? false
            return (s.string(0), expired)
        }
        if let existingUser, !existingUser.1, !upsert {
            throw .duplicate("memory item \(Validation.show(item.id)) already exists")
        }
        try db.withStatement(
            "insert_item",
            """
            INSERT OR REPLACE INTO memory_items (\(Rows.itemColumns), content_hash)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
            """
        ) { s throws(MemoryError) in
            try Rows.bind(item, to: s)
            try s.run()
        }
        var changes: [IndexChange] = []
        if let (oldUser, _) = existingUser, oldUser != item.userID || item.embedding.isEmpty {
            changes.append(.remove(id: item.id, userID: oldUser))
        }
        if !item.embedding.isEmpty {
            changes.append(
                .put(
                    IndexedVector(
                        id: item.id, userID: item.userID, persona: item.personaActive,
                        session: item.sessionID, expiration: item.expiration?.microseconds,
                        embedding: item.embedding)))
        }
        return changes
    }

    func getMemoryItem(id: String, context: CallContext) throws(MemoryError) -> MemoryItem {
        let found = try db.withDeadline(context.deadline) { () throws(MemoryError) -> MemoryItem? in
            try fetchItem(id: id, now: context.now.microseconds)
        }
        guard let item = found else {
            throw .notFound("memory item \(Validation.show(id)) not found")
        }
        return item
    }

    /// The unexpired item with this id, if any.
    func fetchItem(id: String, now: Int64) throws(MemoryError) -> MemoryItem? {
        try db.withStatement(
            "get_item",
            """
            SELECT \(Rows.itemColumns) FROM memory_items WHERE id = ?1 AND (expiration IS NULL OR expiration > ?2)
            """
        ) { s throws(MemoryError) -> MemoryItem? in
            try s.bind(1, id)
            try s.bind(2, now)
            return try s.step() ? try Rows.memoryItem(s) : nil
        }
    }

    func deleteMemoryItem(id: String, context: CallContext) throws(MemoryError) {
        let deleted = try backend.write(db, context) { () throws(MemoryError) -> (Bool, [IndexChange]) in
            let owner = try db.withStatement(
                "delete_item",
                """
                DELETE FROM memory_items WHERE id = ?1 AND (expiration IS NULL OR expiration > ?2) RETURNING user_id
                """
            ) { s throws(MemoryError) -> String? in
                try s.bind(1, id)
                try s.bind(2, context.now.microseconds)
                var owner: String?
                while try s.step() { owner = s.string(0) }
                return owner
            }
            guard let owner else { return (false, []) }
            return (true, [.remove(id: id, userID: owner)])
        }
        guard deleted else { throw .notFound("memory item \(Validation.show(id)) not found") }
    }

    func findByContentHash(userID: String, contentHash: String, context: CallContext) throws(MemoryError) -> String? {
        try db.withDeadline(context.deadline) { () throws(MemoryError) -> String? in
            try findByContentHash(userID, contentHash, context)
        }
    }

    private func findByContentHash(_ userID: String, _ contentHash: String, _ context: CallContext) throws(MemoryError)
        -> String?
    {
        try db.withStatement(
            "find_content_hash",
            """
            SELECT id FROM memory_items
            WHERE user_id = ?1 AND content_hash = ?2 AND (expiration IS NULL OR expiration > ?3)
            ORDER BY timestamp, id LIMIT 1
            """
        ) { s throws(MemoryError) -> String? in
            try s.bind(1, userID)
            try s.bind(2, contentHash)
            try s.bind(3, context.now.microseconds)
            return try s.step() ? s.string(0) : nil
        }
    }

    // MARK: - History

    func conversationHistory(_ query: HistoryQuery, context: CallContext) throws(MemoryError) -> Page<MemoryItem> {
        var sql =
            "SELECT \(Self.itemColumns(embedding: !query.excludeEmbeddings)) FROM memory_items WHERE user_id = ? AND item_type = ? AND \(Rows.unexpired)"
        var values: [SQLValue] = [.text(query.userID), .text(query.itemType), .integer(context.now.microseconds)]
        if !query.sessionID.isEmpty {
            sql += " AND session_id = ?"
            values.append(.text(query.sessionID))
        }
        if let cursor = query.cursor {
            Paging.appendAfter(cursor, to: &sql, values: &values)
        }
        // Sorted so that the same filter keys give the same SQL text, and so the same cached statement.
        for key in query.filters.keys.sorted() {
            HistoryFilter.append(key: key, value: query.filters[key]!, to: &sql, values: &values)
        }
        sql += " ORDER BY timestamp DESC, id DESC LIMIT ?"
        values.append(.integer(Int64(query.limit) + 1))
        let rows = try db.withDeadline(context.deadline) { () throws(MemoryError) -> [MemoryItem] in
            try db.withStatement("history", sql) { s throws(MemoryError) -> [MemoryItem] in
                for (i, v) in values.enumerated() { try s.bind(Int32(i + 1), v) }
                var rows: [MemoryItem] = []
                while try s.step() { rows.append(try Rows.memoryItem(s)) }
                return rows
            }
        }
        return Paging.page(rows, limit: query.limit) {
            PageCursor(timestamp: $0.timestamp ?? Timestamp(seconds: 0), id: $0.id)
        }
    }
}

/// Keyset paging over `ORDER BY timestamp DESC, id DESC`.
enum Paging {
    /// Rows strictly after the cursor in that order.
    static func appendAfter(_ cursor: PageCursor, to sql: inout String, values: inout [SQLValue]) {
        // The first term lets sqlite bound the index range; the second is the exact condition.
        sql += " AND timestamp <= ? AND (timestamp < ? OR id < ?)"
        let micros = cursor.timestamp.microseconds
        values += [.integer(micros), .integer(micros), .text(cursor.id)]
    }

    /// Cuts `limit + 1` fetched rows to a page whose token points after its last row when there are more.
    static func page<T>(_ rows: [T], limit: Int, cursor: (T) -> PageCursor) -> Page<T> {
        guard rows.count > limit, limit > 0 else { return Page(items: Array(rows.prefix(max(limit, 0)))) }
        let items = Array(rows.prefix(limit))
        return Page(items: items, nextPageToken: cursor(items[items.count - 1]).token)
    }
}

/// Equality filters of GetConversationHistory as SQL.
enum HistoryFilter {
    static let columns: Set<String> = ["id", "user_id", "session_id", "item_type", "persona_active", "text_content"]

    static func append(key: String, value: JSONValue, to sql: inout String, values: inout [SQLValue]) {
        if columns.contains(key) {
            // Top-level fields are strings; proto3 has no null string, so null matches the empty one.
            switch value {
            case .string(let s):
                sql += " AND \(key) = ?"
                values.append(.text(s))
            case .null:
                sql += " AND \(key) = ''"
            default:
                sql += " AND 0"
            }
            return
        }
        guard key.hasPrefix("metadata."), let path = jsonPath(String(key.dropFirst("metadata.".count))) else {
            sql += " AND 0"
            return
        }
        // json_type tells a string "1" from the number 1 and from true, which json_extract alone does not.
        switch value {
        case .string(let s):
            sql += " AND (json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?)"
            values += [.text(path), .text(path), .text(s)]
        case .number(let n):
            sql += " AND (json_type(metadata, ?) IN ('integer', 'real') AND json_extract(metadata, ?) = ?)"
            values += [.text(path), .text(path), .real(n)]
        case .bool(let b):
            sql += " AND json_type(metadata, ?) = '\(b ? "true" : "false")'"
            values.append(.text(path))
        case .null:
            sql += " AND coalesce(json_type(metadata, ?), 'null') = 'null'"
            values.append(.text(path))
        case .array, .object:
            sql += " AND 0"
        }
    }

    /// `a.b` → `$."a"."b"` (dots nest, as in Firestore field paths); nil when a part cannot be quoted.
    static func jsonPath(_ key: String) -> String? {
        var path = "$"
        for part in key.split(separator: ".", omittingEmptySubsequences: false) {
            guard !part.isEmpty, !part.contains("\""), !part.contains("\\") else { return nil }
            path += ".\"\(part)\""
        }
        return path
    }
}
