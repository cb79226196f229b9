import MemoryDomain

/// The database layout. `PRAGMA user_version` holds the schema version; a future version adds a step to
/// ``migrations`` instead of changing the statements of an earlier one.
enum Schema {
    static let version: Int64 = 1

    /// `migrations[i]` takes the database from version `i` to `i + 1`.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE IF NOT EXISTS memory_items (
                id             TEXT PRIMARY KEY NOT NULL,
                user_id        TEXT NOT NULL,
                session_id     TEXT NOT NULL DEFAULT '',
                timestamp      INTEGER NOT NULL,          -- microseconds since the Unix epoch, UTC
                item_type      TEXT NOT NULL,
                persona_active TEXT NOT NULL DEFAULT '',
                text_content   TEXT NOT NULL DEFAULT '',
                embedding      BLOB,                      -- little-endian float32; NULL when none
                metadata       TEXT NOT NULL DEFAULT '{}', -- JSON object
                expiration     INTEGER,                   -- microseconds; NULL = never
                content_hash   TEXT NOT NULL DEFAULT ''
            )
            """,
            "CREATE INDEX IF NOT EXISTS memory_items_history ON memory_items (user_id, item_type, timestamp DESC, id DESC)",
            "CREATE INDEX IF NOT EXISTS memory_items_content_hash ON memory_items (user_id, content_hash)",
            "CREATE INDEX IF NOT EXISTS memory_items_expiration ON memory_items (expiration) WHERE expiration IS NOT NULL",
            """
            CREATE TABLE IF NOT EXISTS agent_data (
                id         TEXT PRIMARY KEY NOT NULL,
                agent_id   TEXT NOT NULL,
                timestamp  INTEGER NOT NULL,
                data_type  TEXT NOT NULL,
                content    TEXT,                          -- JSON value; NULL when none
                metadata   TEXT NOT NULL DEFAULT '{}',
                expiration INTEGER
            )
            """,
            "CREATE INDEX IF NOT EXISTS agent_data_list ON agent_data (agent_id, timestamp DESC, id DESC)",
            "CREATE INDEX IF NOT EXISTS agent_data_list_type ON agent_data (agent_id, data_type, timestamp DESC, id DESC)",
            "CREATE INDEX IF NOT EXISTS agent_data_expiration ON agent_data (expiration) WHERE expiration IS NOT NULL",
        ]
    ]

    /// Brings the database to ``version``. Refuses a database written by a newer memoryd.
    static func migrate(_ db: SQLiteDatabase) throws(MemoryError) {
        // WAL is persistent in the file; readers never block the writer and vice versa.
        let mode = try db.withStatement("pragma_journal_mode", "PRAGMA journal_mode = WAL") { s throws(MemoryError) in
            try s.step() ? s.string(0) : ""
        }
        guard mode.lowercased() == "wal" else {
            throw .storage("sqlite database \(db.path) refused WAL mode (journal_mode is \(Validation.show(mode)))")
        }
        try db.transaction { () throws(MemoryError) in
            let current = try db.withStatement("pragma_user_version", "PRAGMA user_version") { s throws(MemoryError) in
                try s.step() ? s.int64(0) : 0
            }
            guard current <= version else {
                throw .storage(
                    "sqlite database \(db.path) has schema version \(current); this memoryd knows up to \(version)")
            }
            for step in Int(current)..<Int(version) {
                for (i, sql) in migrations[step].enumerated() {
                    try db.exec(sql, name: "migration_\(step + 1)_\(i)")
                }
            }
            if current != version {
                try db.exec("PRAGMA user_version = \(version)", name: "pragma_user_version")
            }
        }
    }
}
