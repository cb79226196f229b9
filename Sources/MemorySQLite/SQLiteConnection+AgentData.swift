import MemoryDomain
import MemoryUtilities

extension SQLiteConnection {
    // MARK: - Agent data

    func addAgentData(_ data: AgentData, context: CallContext) throws(MemoryError) {
        let now = context.now.microseconds
        try backend.write(db, context) { () throws(MemoryError) -> ((), [IndexChange]) in
            let exists = try db.withStatement(
                "find_agent_data",
                "SELECT expiration FROM agent_data WHERE id = ?1"
            ) { s throws(MemoryError) -> Bool in
                try s.bind(1, data.id)
                guard try s.step() else { return false }
                return s.optionalInt64(0).map { $0 > now } ?? true
            }
            if exists {
                // The same data sent again (a retry whose first attempt committed) succeeds; see store(_:).
                if let stored = try fetchAgentData(id: data.id, now: now) {
                    var again = data
                    again.timestamp = stored.timestamp
                    if again == stored { return ((), []) }
                }
                throw .duplicate("agent data \(Validation.show(data.id)) already exists")
            }
            // REPLACE: an expired row with this id counts as absent.
            try db.withStatement(
                "insert_agent_data",
                """
                INSERT OR REPLACE INTO agent_data (\(Rows.agentDataColumns)) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                """
            ) { s throws(MemoryError) in
                try Rows.bind(data, to: s)
                try s.run()
            }
            return ((), [])
        }
    }

    func getAgentData(id: String, context: CallContext) throws(MemoryError) -> AgentData {
        let data = try db.withDeadline(context.deadline) { () throws(MemoryError) -> AgentData? in
            try fetchAgentData(id: id, now: context.now.microseconds)
        }
        guard let data else { throw .notFound("agent data \(Validation.show(id)) not found") }
        return data
    }

    /// The unexpired agent data with this id, if any.
    func fetchAgentData(id: String, now: Int64) throws(MemoryError) -> AgentData? {
        try db.withStatement(
            "get_agent_data",
            """
            SELECT \(Rows.agentDataColumns) FROM agent_data WHERE id = ?1 AND (expiration IS NULL OR expiration > ?2)
            """
        ) { s throws(MemoryError) -> AgentData? in
            try s.bind(1, id)
            try s.bind(2, now)
            return try s.step() ? try Rows.agentData(s) : nil
        }
    }

    func listAgentData(_ query: AgentDataQuery, context: CallContext) throws(MemoryError) -> Page<AgentData> {
        if query.agentID.isEmpty { return try listAllAgentData(query, context: context) }
        var sql = "SELECT \(Rows.agentDataColumns) FROM agent_data WHERE agent_id = ? AND \(Rows.unexpired)"
        var values: [SQLValue] = [.text(query.agentID), .integer(context.now.microseconds)]
        if !query.dataType.isEmpty {
            sql += " AND data_type = ?"
            values.append(.text(query.dataType))
        }
        if let cursor = query.cursor { Paging.appendAfter(cursor, to: &sql, values: &values) }
        sql += " ORDER BY timestamp DESC, id DESC LIMIT ?"
        values.append(.integer(Int64(query.limit) + 1))
        let rows = try db.withDeadline(context.deadline) { () throws(MemoryError) -> [AgentData] in
            try db.withStatement("list_agent_data", sql) { s throws(MemoryError) -> [AgentData] in
                for (i, v) in values.enumerated() { try s.bind(Int32(i + 1), v) }
                var rows: [AgentData] = []
                while try s.step() { rows.append(try Rows.agentData(s)) }
                return rows
            }
        }
        return Paging.page(rows, limit: query.limit) {
            PageCursor(timestamp: $0.timestamp ?? Timestamp(seconds: 0), id: $0.id)
        }
    }

    // MARK: - Maintenance

    /// Deletes in batches, one transaction each, releasing the writer lock in between so that other
    /// writers are not held up by a large cleanup.
    func cleanupExpired(context: CallContext) throws(MemoryError) -> UInt64 {
        let now = context.now.microseconds
        let batch = Int64(min(backend.batchSize, 500))
        var total: UInt64 = 0
        while true {
            let deleted = try backend.write(db, context) { () throws(MemoryError) -> (Int, [IndexChange]) in
                try db.withStatement(
                    "cleanup_items",
                    """
                    DELETE FROM memory_items WHERE id IN (
                        SELECT id FROM memory_items WHERE expiration IS NOT NULL AND expiration <= ?1 LIMIT ?2)
                    RETURNING id, user_id
                    """
                ) { s throws(MemoryError) -> (Int, [IndexChange]) in
                    try s.bind(1, now)
                    try s.bind(2, batch)
                    var changes: [IndexChange] = []
                    while try s.step() { changes.append(.remove(id: s.string(0), userID: s.string(1))) }
                    return (changes.count, changes)
                }
            }
            total += UInt64(deleted)
            if deleted < batch { break }
        }
        while true {
            let deleted = try backend.write(db, context) { () throws(MemoryError) -> (Int, [IndexChange]) in
                let n = try db.withStatement(
                    "cleanup_agent_data",
                    """
                    DELETE FROM agent_data WHERE id IN (
                        SELECT id FROM agent_data WHERE expiration IS NOT NULL AND expiration <= ?1 LIMIT ?2)
                    """
                ) { s throws(MemoryError) -> Int in
                    try s.bind(1, now)
                    try s.bind(2, batch)
                    return try s.run()
                }
                return (n, [])
            }
            total += UInt64(deleted)
            if deleted < batch { break }
        }
        if total > 0 { backend.logger.debug("sqlite: cleaned up expired rows", metadata: ["count": "\(total)"]) }
        return total
    }

    func health(context: CallContext) -> BackendHealth {
        let start = monotonicNanos()
        do throws(MemoryError) {
            let one = try db.withDeadline(context.deadline) { () throws(MemoryError) -> Int64 in
                try db.withStatement("health_probe", "SELECT 1") { s throws(MemoryError) -> Int64 in
                    try s.step() ? s.int64(0) : 0
                }
            }
            guard one == 1 else { throw .storage("sqlite probe SELECT 1 returned \(one)") }
            let ms = Double(monotonicNanos() - start) / 1_000_000
            return BackendHealth(
                status: .healthy,
                details: [
                    "sqlite_path": .string(backend.path),
                    "sqlite_latency_ms": .number((ms * 1000).rounded() / 1000),
                ])
        } catch {
            return BackendHealth(
                status: .unhealthy, reason: error.message, details: ["sqlite_path": .string(backend.path)])
        }
    }
}
