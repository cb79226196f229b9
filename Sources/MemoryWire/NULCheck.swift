import MemoryDomain
import MemoryUtilities

// MARK: - NUL bytes

extension MethodRequest {
    /// The first string field holding a NUL byte, if any. protobuf-c carries strings as C strings, so such
    /// a string would be cut at the NUL on the way out; clients refuse it instead (the server refuses it too).
    public var fieldWithNUL: String? {
        func nul(_ s: String) -> Bool { s.utf8.contains(0) }
        func inJSON(_ v: JSONValue, _ path: String) -> String? {
            switch v {
            case .string(let s): return nul(s) ? path : nil
            case .array(let a):
                for (i, e) in a.enumerated() { if let p = inJSON(e, "\(path)[\(i)]") { return p } }
            case .object(let o):
                for (k, e) in o {
                    if nul(k) { return "\(path) key" }
                    if let p = inJSON(e, "\(path).\(k)") { return p }
                }
            default: break
            }
            return nil
        }
        func inItem(_ m: MemoryItem, _ f: String) -> String? {
            for (name, s) in [
                ("id", m.id), ("user_id", m.userID), ("session_id", m.sessionID), ("item_type", m.itemType),
                ("persona_active", m.personaActive), ("text_content", m.textContent),
            ] where nul(s) {
                return "\(f).\(name)"
            }
            return inJSON(.object(m.metadata), "\(f).metadata")
        }
        switch self {
        case .ping, .cleanupExpiredItems, .healthCheck, .getMetrics: return nil
        case .addMemoryItem(let item, _, _), .checkDuplicate(let item): return inItem(item, "item")
        case .addMemoryItems(let items, _):
            for (i, item) in items.enumerated() { if let p = inItem(item, "items[\(i)]") { return p } }
            return nil
        case .getMemoryItem(let id), .deleteMemoryItem(let id), .getAgentData(let id): return nul(id) ? "id" : nil
        case .getConversationHistory(let r):
            for (name, s) in [
                ("user_id", r.userID), ("session_id", r.sessionID), ("item_type", r.itemType),
                ("page_token", r.pageToken),
            ]
            where nul(s) { return name }
            return inJSON(.object(r.filters), "filters")
        case .semanticSearch(let r):
            for (name, s) in [("user_id", r.userID), ("persona", r.persona), ("session_id", r.sessionID)] where nul(s) {
                return name
            }
            return nil
        case .addRawAgentData(let d):
            for (name, s) in [("id", d.id), ("agent_id", d.agentID), ("data_type", d.dataType)] where nul(s) {
                return "data.\(name)"
            }
            if let c = d.content, let p = inJSON(c, "data.content") { return p }
            return inJSON(.object(d.metadata), "data.metadata")
        case .listAgentData(let r):
            for (name, s) in [("agent_id", r.agentID), ("data_type", r.dataType), ("page_token", r.pageToken)]
            where nul(s) { return name }
            return nil
        }
    }
}
