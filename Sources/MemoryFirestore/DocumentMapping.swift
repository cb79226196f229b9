import MemoryDomain
import MemoryUtilities

/// Firestore REST `Value`s (`{"stringValue": ...}`, `{"mapValue": {"fields": ...}}`, ...) and the documents of
/// SPEC §9, built and read as `JSONValue`.
enum FirestoreValue {
    /// Integral numbers within ±2^53 travel as `integerValue` (exact both ways), all others as `doubleValue`.
    /// Reading maps both back to a JSON number, so a value round-trips unchanged.
    static func encode(_ v: JSONValue) -> JSONValue {
        switch v {
        case .null: return .object(["nullValue": .null])
        case .bool(let b): return .object(["booleanValue": .bool(b)])
        case .number(let n):
            if n == n.rounded(), abs(n) <= 9_007_199_254_740_992 {
                return .object(["integerValue": .string(String(Int64(n)))])
            }
            return .object(["doubleValue": .number(n)])
        case .string(let s): return .object(["stringValue": .string(s)])
        case .array(let a): return .object(["arrayValue": .object(["values": .array(a.map(encode))])])
        case .object(let o): return map(o.mapValues(encode))
        }
    }

    /// A Firestore Value back to JSON. Firestore-only types become their JSON form (timestamps as RFC 3339
    /// text, references as names, bytes as base64, geo points as `{latitude, longitude}`).
    static func decode(_ v: JSONValue) -> JSONValue {
        guard case .object(let o) = v, let (kind, payload) = o.first else { return .null }
        switch kind {
        case "nullValue": return .null
        case "booleanValue": return .bool(payload.boolValue ?? false)
        case "integerValue":
            if let s = payload.stringValue, let i = Int64(s) { return .number(Double(i)) }
            return .number(payload.numberValue ?? 0)
        case "doubleValue": return .number(double(payload) ?? 0)
        case "stringValue", "timestampValue", "referenceValue", "bytesValue": return .string(payload.stringValue ?? "")
        case "arrayValue": return .array((payload["values"]?.arrayValue ?? []).map(decode))
        case "mapValue": return .object((payload["fields"]?.objectValue ?? [:]).mapValues(decode))
        case "geoPointValue": return payload
        default: return .null
        }
    }

    /// `doubleValue` is a JSON number, or a string for NaN and the infinities.
    static func double(_ payload: JSONValue) -> Double? {
        if let n = payload.numberValue { return n }
        if let s = payload.stringValue { return Double(s) }
        return nil
    }

    static func string(_ s: String) -> JSONValue { .object(["stringValue": .string(s)]) }
    static func timestamp(_ t: Timestamp) -> JSONValue { .object(["timestampValue": .string(t.rfc3339)]) }
    static func map(_ fields: [String: JSONValue]) -> JSONValue {
        .object(["mapValue": .object(["fields": .object(fields)])])
    }
    static func reference(_ name: String) -> JSONValue { .object(["referenceValue": .string(name)]) }

    /// A Firestore vector value (SPEC §9): a map with `__type__: "__vector__"` and the values as doubles.
    static func vector(_ values: [Float]) -> JSONValue {
        map([
            "__type__": string("__vector__"),
            "value": .object([
                "arrayValue": .object(["values": .array(values.map { .object(["doubleValue": .number(Double($0))]) })])
            ]),
        ])
    }

    /// The floats of a vector value (or of a plain array of numbers), nil for anything else.
    static func decodeVector(_ v: JSONValue) -> [Float]? {
        guard let fields = v["mapValue"]?["fields"], fields["__type__"]?["stringValue"]?.stringValue == "__vector__",
            let values = fields["value"]?["arrayValue"]?["values"]?.arrayValue
                ?? (fields["value"]?["arrayValue"] != nil ? [] : nil)
        else { return nil }
        var out: [Float] = []
        out.reserveCapacity(values.count)
        for x in values {
            if let d = x["doubleValue"].flatMap(double) {
                out.append(Float(d))
            } else if let s = x["integerValue"]?.stringValue, let i = Int64(s) {
                out.append(Float(i))
            } else {
                return nil
            }
        }
        return out
    }

    static func readTimestamp(_ v: JSONValue?) -> Timestamp? {
        guard let s = v?["timestampValue"]?.stringValue, let t = Timestamp(rfc3339: s) else { return nil }
        return t.truncatedToMicroseconds
    }

    static func readString(_ v: JSONValue?) -> String { v?["stringValue"]?.stringValue ?? "" }
}

/// The document layout of SPEC §9 for memory items and agent data.
enum DocumentMapping {
    /// The field `findNearest` writes the distance into (`distanceResultField`); never stored.
    static let distanceField = "memoryd_distance"

    static func fields(of item: MemoryItem) -> [String: JSONValue] {
        var f: [String: JSONValue] = [
            "id": FirestoreValue.string(item.id),
            "user_id": FirestoreValue.string(item.userID),
            "session_id": FirestoreValue.string(item.sessionID),
            "item_type": FirestoreValue.string(item.itemType),
            "persona_active": FirestoreValue.string(item.personaActive),
            "text_content": FirestoreValue.string(item.textContent),
            "metadata": FirestoreValue.map(item.metadata.mapValues(FirestoreValue.encode)),
        ]
        if let t = item.timestamp { f["timestamp"] = FirestoreValue.timestamp(t) }
        if let t = item.expiration { f["expiration"] = FirestoreValue.timestamp(t) }
        if !item.embedding.isEmpty { f["embedding"] = FirestoreValue.vector(item.embedding) }
        return f
    }

    static func item(from document: JSONValue) -> MemoryItem {
        let f = document["fields"]?.objectValue ?? [:]
        var item = MemoryItem()
        item.id = f["id"].map(FirestoreValue.readString) ?? ""
        if item.id.isEmpty, let name = document["name"]?.stringValue { item.id = documentID(name) }
        item.userID = FirestoreValue.readString(f["user_id"])
        item.sessionID = FirestoreValue.readString(f["session_id"])
        item.itemType = FirestoreValue.readString(f["item_type"])
        item.personaActive = FirestoreValue.readString(f["persona_active"])
        item.textContent = FirestoreValue.readString(f["text_content"])
        item.timestamp = FirestoreValue.readTimestamp(f["timestamp"])
        item.expiration = FirestoreValue.readTimestamp(f["expiration"])
        if let e = f["embedding"] { item.embedding = FirestoreValue.decodeVector(e) ?? [] }
        if let m = f["metadata"], case .object(let o) = FirestoreValue.decode(m) { item.metadata = o }
        return item
    }

    static func fields(of data: AgentData) -> [String: JSONValue] {
        var f: [String: JSONValue] = [
            "id": FirestoreValue.string(data.id),
            "agent_id": FirestoreValue.string(data.agentID),
            "data_type": FirestoreValue.string(data.dataType),
            "metadata": FirestoreValue.map(data.metadata.mapValues(FirestoreValue.encode)),
        ]
        if let c = data.content { f["content"] = FirestoreValue.encode(c) }
        if let t = data.timestamp { f["timestamp"] = FirestoreValue.timestamp(t) }
        if let t = data.expiration { f["expiration"] = FirestoreValue.timestamp(t) }
        return f
    }

    static func agentData(from document: JSONValue) -> AgentData {
        let f = document["fields"]?.objectValue ?? [:]
        var data = AgentData()
        data.id = f["id"].map(FirestoreValue.readString) ?? ""
        if data.id.isEmpty, let name = document["name"]?.stringValue { data.id = documentID(name) }
        data.agentID = FirestoreValue.readString(f["agent_id"])
        data.dataType = FirestoreValue.readString(f["data_type"])
        data.content = f["content"].map(FirestoreValue.decode)
        data.timestamp = FirestoreValue.readTimestamp(f["timestamp"])
        data.expiration = FirestoreValue.readTimestamp(f["expiration"])
        if let m = f["metadata"], case .object(let o) = FirestoreValue.decode(m) { data.metadata = o }
        return data
    }

    /// The expiration of a stored document, whatever its collection.
    static func expiration(of document: JSONValue) -> Timestamp? {
        FirestoreValue.readTimestamp(document["fields"]?["expiration"])
    }

    /// The last path segment of a document name.
    static func documentID(_ name: String) -> String {
        if let slash = name.lastIndex(of: "/") { return String(name[name.index(after: slash)...]) }
        return name
    }

    /// A field path for queries: each segment bare when it is a simple name, else back-quoted.
    static func fieldPath(_ segments: [String]) -> String {
        segments.map { s in
            let simple =
                !s.isEmpty
                && s.utf8.allSatisfy { c in
                    (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F
                } && !(s.utf8.first! >= 0x30 && s.utf8.first! <= 0x39)
            if simple { return s }
            return "`" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "`", with: "\\`") + "`"
        }.joined(separator: ".")
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty, contains(target) else { return self }
        var out = ""
        var rest = self[...]
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        out += rest
        return out
    }
}
