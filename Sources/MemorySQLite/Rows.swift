import MemoryDomain
import MemoryUtilities

/// A value to bind into dynamically built SQL.
enum SQLValue {
    case text(String)
    case integer(Int64)
    case real(Double)
}

extension SQLiteStatement {
    func bind(_ index: Int32, _ value: SQLValue) throws(MemoryError) {
        switch value {
        case .text(let s): try bind(index, s)
        case .integer(let i): try bind(index, i)
        case .real(let d): try bind(index, d)
        }
    }
}

/// Mapping between rows and the model.
enum Rows {
    static let itemColumns =
        "id, user_id, session_id, timestamp, item_type, persona_active, text_content, embedding, metadata, expiration"

    /// Reads a row selected with ``itemColumns``.
    static func memoryItem(_ s: SQLiteStatement) throws(MemoryError) -> MemoryItem {
        let id = s.string(0)
        var embedding: [Float] = []
        if !s.isNull(7), !EmbeddingCodec.decode(s.blob(7), into: &embedding) {
            throw .storage(
                "memory item \(Validation.show(id)) has an embedding of \(s.blob(7).count) bytes, not a whole number of floats"
            )
        }
        return MemoryItem(
            id: id, userID: s.string(1), sessionID: s.string(2), timestamp: Timestamp(microseconds: s.int64(3)),
            itemType: s.string(4), personaActive: s.string(5), textContent: s.string(6), embedding: embedding,
            metadata: try object(s.string(8), what: "memory item \(Validation.show(id)) metadata"),
            expiration: s.optionalInt64(9).map(Timestamp.init(microseconds:)))
    }

    /// Binds the 11 parameters of an item insert: the ``itemColumns`` then `content_hash`.
    static func bind(_ item: MemoryItem, to s: SQLiteStatement) throws(MemoryError) {
        try s.bind(1, item.id)
        try s.bind(2, item.userID)
        try s.bind(3, item.sessionID)
        try s.bind(4, item.timestamp?.microseconds ?? 0)
        try s.bind(5, item.itemType)
        try s.bind(6, item.personaActive)
        try s.bind(7, item.textContent)
        try s.bind(8, embedding: item.embedding)
        try s.bind(9, JSONValue.object(item.metadata).serialized())
        try s.bind(10, item.expiration?.microseconds)
        try s.bind(11, item.contentHash ?? "")
    }

    static let agentDataColumns = "id, agent_id, timestamp, data_type, content, metadata, expiration"

    static func agentData(_ s: SQLiteStatement) throws(MemoryError) -> AgentData {
        let id = s.string(0)
        var content: JSONValue?
        if !s.isNull(4) {
            do throws(JSONParseError) {
                content = try JSONValue.parse(s.string(4))
            } catch {
                throw .storage("agent data \(Validation.show(id)) content is not JSON: \(error)")
            }
        }
        return AgentData(
            id: id, agentID: s.string(1), timestamp: Timestamp(microseconds: s.int64(2)), dataType: s.string(3),
            content: content, metadata: try object(s.string(5), what: "agent data \(Validation.show(id)) metadata"),
            expiration: s.optionalInt64(6).map(Timestamp.init(microseconds:)))
    }

    static func bind(_ data: AgentData, to s: SQLiteStatement) throws(MemoryError) {
        try s.bind(1, data.id)
        try s.bind(2, data.agentID)
        try s.bind(3, data.timestamp?.microseconds ?? 0)
        try s.bind(4, data.dataType)
        if let content = data.content { try s.bind(5, content.serialized()) } else { try s.bindNull(5) }
        try s.bind(6, JSONValue.object(data.metadata).serialized())
        try s.bind(7, data.expiration?.microseconds)
    }

    private static func object(_ text: String, what: String) throws(MemoryError) -> [String: JSONValue] {
        if text.isEmpty { return [:] }
        let value: JSONValue
        do throws(JSONParseError) {
            value = try JSONValue.parse(text)
        } catch {
            throw .storage("\(what) is not JSON: \(error)")
        }
        guard let object = value.objectValue else { throw .storage("\(what) is not a JSON object") }
        return object
    }

    /// `expiration` is unset or after `now` (a parameter).
    static let unexpired = "(expiration IS NULL OR expiration > ?)"
}
