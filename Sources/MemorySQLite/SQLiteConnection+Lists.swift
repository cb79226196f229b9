import MemoryDomain
import MemoryUtilities

/// The export/copy listings (ListMemoryItems, ListAgentData with all_agents) and reads that leave the
/// embedding column out (exclude_embeddings).
extension SQLiteConnection {
    /// ``Rows/itemColumns`` with the embedding column read or replaced by NULL (``Rows/memoryItem`` then
    /// leaves the embedding empty, and sqlite never reads the blob).
    static func itemColumns(embedding: Bool) -> String {
        embedding ? Rows.itemColumns : Rows.itemColumns.replacingEmbeddingColumn
    }

    /// The unexpired item with this id, if any, with or without its embedding.
    func fetchItem(id: String, now: Int64, embedding: Bool) throws(MemoryError) -> MemoryItem? {
        if embedding { return try fetchItem(id: id, now: now) }
        return try db.withStatement(
            "get_item_without_embedding",
            """
            SELECT \(Self.itemColumns(embedding: false)) FROM memory_items
            WHERE id = ?1 AND (expiration IS NULL OR expiration > ?2)
            """
        ) { s throws(MemoryError) -> MemoryItem? in
            try s.bind(1, id)
            try s.bind(2, now)
            return try s.step() ? try Rows.memoryItem(s) : nil
        }
    }

    func listMemoryItems(_ query: ListItemsQuery, context: CallContext) throws(MemoryError) -> Page<MemoryItem> {
        var sql =
            "SELECT \(Self.itemColumns(embedding: !query.excludeEmbeddings)) FROM memory_items WHERE \(Rows.unexpired)"
        var values: [SQLValue] = [.integer(context.now.microseconds)]
        if !query.userID.isEmpty {
            sql += " AND user_id = ?"
            values.append(.text(query.userID))
        }
        if !query.itemType.isEmpty {
            sql += " AND item_type = ?"
            values.append(.text(query.itemType))
        }
        if let cursor = query.cursor {
            // Strictly after the cursor in (timestamp, id) ascending order.
            sql += " AND timestamp >= ? AND (timestamp > ? OR id > ?)"
            let micros = cursor.timestamp.microseconds
            values += [.integer(micros), .integer(micros), .text(cursor.id)]
        }
        sql += " ORDER BY timestamp ASC, id ASC LIMIT ?"
        values.append(.integer(Int64(query.limit) + 1))
        let rows = try db.withStatement("list_items", sql) { s throws(MemoryError) -> [MemoryItem] in
            for (i, v) in values.enumerated() { try s.bind(Int32(i + 1), v) }
            var rows: [MemoryItem] = []
            while try s.step() { rows.append(try Rows.memoryItem(s)) }
            return rows
        }
        return Paging.page(rows, limit: query.limit) {
            PageCursor(timestamp: $0.timestamp ?? Timestamp(seconds: 0), id: $0.id)
        }
    }

    /// ListAgentData with `all_agents`: every agent's data, newest first.
    func listAllAgentData(_ query: AgentDataQuery, context: CallContext) throws(MemoryError) -> Page<AgentData> {
        var sql = "SELECT \(Rows.agentDataColumns) FROM agent_data WHERE \(Rows.unexpired)"
        var values: [SQLValue] = [.integer(context.now.microseconds)]
        if !query.dataType.isEmpty {
            sql += " AND data_type = ?"
            values.append(.text(query.dataType))
        }
        if let cursor = query.cursor { Paging.appendAfter(cursor, to: &sql, values: &values) }
        sql += " ORDER BY timestamp DESC, id DESC LIMIT ?"
        values.append(.integer(Int64(query.limit) + 1))
        let rows = try db.withStatement("list_all_agent_data", sql) { s throws(MemoryError) -> [AgentData] in
            for (i, v) in values.enumerated() { try s.bind(Int32(i + 1), v) }
            var rows: [AgentData] = []
            while try s.step() { rows.append(try Rows.agentData(s)) }
            return rows
        }
        return Paging.page(rows, limit: query.limit) {
            PageCursor(timestamp: $0.timestamp ?? Timestamp(seconds: 0), id: $0.id)
        }
    }
}

extension String {
    /// An item column list with `embedding` replaced by `NULL AS embedding`.
    fileprivate var replacingEmbeddingColumn: String {
        split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: " ") == "embedding" ? " NULL AS embedding" : String($0)
        }.joined(separator: ",")
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in c: Character) -> Substring {
        var s = self
        while s.first == c { s = s.dropFirst() }
        while s.last == c { s = s.dropLast() }
        return s
    }
}
