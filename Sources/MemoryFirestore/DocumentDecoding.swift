import CFirestoreProto
import MemoryDomain
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// Reading Firestore documents (SPEC §9 layout) straight from unpacked protobuf-c structs into the model:
/// one pass over a document's fields, vectors copied into `[Float]` directly, JSON built only for the
/// free-form parts (metadata, agent data content).
enum DocumentDecoding {
    /// The field `findNearest` writes the distance into (`distance_result_field`); never stored.
    static let distanceField = "memoryd_distance"

    /// A memory item; `distance` receives `distanceField` when the document carries it (search results).
    static func item(_ doc: UnsafePointer<FSDocument>, distance: UnsafeMutablePointer<Double>? = nil) -> MemoryItem {
        var item = MemoryItem()
        forEachField(doc) { key, v in
            switch key {
            case "id": item.id = string(v)
            case "user_id": item.userID = string(v)
            case "session_id": item.sessionID = string(v)
            case "item_type": item.itemType = string(v)
            case "persona_active": item.personaActive = string(v)
            case "text_content": item.textContent = string(v)
            case "timestamp": item.timestamp = timestamp(v)
            case "expiration": item.expiration = timestamp(v)
            case "embedding": item.embedding = vector(v) ?? []
            case "metadata": if case .object(let o) = json(v) { item.metadata = o }
            case distanceField: distance?.pointee = number(v) ?? .nan
            default: break
            }
        }
        if item.id.isEmpty { item.id = documentID(doc) }
        return item
    }

    static func agentData(_ doc: UnsafePointer<FSDocument>) -> AgentData {
        var data = AgentData()
        forEachField(doc) { key, v in
            switch key {
            case "id": data.id = string(v)
            case "agent_id": data.agentID = string(v)
            case "data_type": data.dataType = string(v)
            case "content": data.content = json(v)
            case "timestamp": data.timestamp = timestamp(v)
            case "expiration": data.expiration = timestamp(v)
            case "metadata": if case .object(let o) = json(v) { data.metadata = o }
            default: break
            }
        }
        if data.id.isEmpty { data.id = documentID(doc) }
        return data
    }

    /// Calls `body` with each field's name and value.
    static func forEachField(_ doc: UnsafePointer<FSDocument>, _ body: (String, UnsafePointer<FSValue>) -> Void) {
        guard let fields = doc.pointee.fields else { return }
        for i in 0..<doc.pointee.n_fields {
            guard let e = fields[i], let key = e.pointee.key, let v = e.pointee.value else { continue }
            body(String(cString: key), v)
        }
    }

    /// The value of one field, if the document has it.
    static func field(_ doc: UnsafePointer<FSDocument>, _ name: StaticString) -> UnsafePointer<FSValue>? {
        guard let fields = doc.pointee.fields else { return nil }
        for i in 0..<doc.pointee.n_fields {
            guard let e = fields[i], let key = e.pointee.key, let v = e.pointee.value else { continue }
            if strcmp(key, UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self)) == 0 {
                return UnsafePointer(v)
            }
        }
        return nil
    }

    /// The document's expiration, whatever its collection.
    static func expiration(_ doc: UnsafePointer<FSDocument>) -> Timestamp? {
        field(doc, "expiration").flatMap(timestamp)
    }

    static func isExpired(_ doc: UnsafePointer<FSDocument>, at now: Timestamp) -> Bool {
        expiration(doc).map { $0 <= now } ?? false
    }

    /// The document's `timestamp` as stored (for keyset cursors).
    static func storedTimestamp(_ doc: UnsafePointer<FSDocument>) -> Timestamp? {
        field(doc, "timestamp").flatMap(timestamp)
    }

    static func name(_ doc: UnsafePointer<FSDocument>) -> String {
        doc.pointee.name.map { String(cString: $0) } ?? ""
    }

    /// The last segment of the document's name.
    static func documentID(_ doc: UnsafePointer<FSDocument>) -> String {
        let n = name(doc)
        if let slash = n.lastIndex(of: "/") { return String(n[n.index(after: slash)...]) }
        return n
    }

    static func version(_ doc: UnsafePointer<FSDocument>) -> DocumentVersion? {
        guard let t = doc.pointee.update_time else { return nil }
        return DocumentVersion(seconds: t.pointee.seconds, nanos: t.pointee.nanos)
    }

    // MARK: - Values

    static func string(_ v: UnsafePointer<FSValue>) -> String {
        guard v.pointee.value_type_case == GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_STRING_VALUE,
            let s = v.pointee.string_value
        else { return "" }
        return String(cString: s)
    }

    static func timestamp(_ v: UnsafePointer<FSValue>) -> Timestamp? {
        guard v.pointee.value_type_case == GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_TIMESTAMP_VALUE,
            let t = v.pointee.timestamp_value
        else { return nil }
        return Timestamp(seconds: t.pointee.seconds, nanos: t.pointee.nanos).truncatedToMicroseconds
    }

    static func number(_ v: UnsafePointer<FSValue>) -> Double? {
        switch v.pointee.value_type_case {
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_DOUBLE_VALUE: v.pointee.double_value
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_INTEGER_VALUE: Double(v.pointee.integer_value)
        default: nil
        }
    }

    /// The floats of a vector value (a map with `__type__: "__vector__"`), or of a plain array of numbers (how
    /// the old manager stored embeddings); nil for anything else.
    static func vector(_ v: UnsafePointer<FSValue>) -> [Float]? {
        var array: UnsafeMutablePointer<FSArrayValue>?
        switch v.pointee.value_type_case {
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_ARRAY_VALUE:
            array = v.pointee.array_value
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_MAP_VALUE:
            guard let map = v.pointee.map_value, let entries = map.pointee.fields else { return nil }
            var isVector = false
            for i in 0..<map.pointee.n_fields {
                guard let e = entries[i], let key = e.pointee.key, let value = e.pointee.value else { continue }
                if strcmp(key, "__type__") == 0 {
                    isVector = string(value) == "__vector__"
                } else if strcmp(key, "value") == 0,
                    value.pointee.value_type_case == GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_ARRAY_VALUE
                {
                    array = value.pointee.array_value
                }
            }
            guard isVector else { return nil }
            guard array != nil else { return [] }
        default:
            return nil
        }
        guard let array, let values = array.pointee.values else { return [] }
        let n = array.pointee.n_values
        var failed = false
        let out = [Float](unsafeUninitializedCapacity: n) { buf, count in
            for i in 0..<n {
                guard let x = values[i] else {
                    failed = true
                    break
                }
                switch x.pointee.value_type_case {
                case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_DOUBLE_VALUE: buf[i] = Float(x.pointee.double_value)
                case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_INTEGER_VALUE: buf[i] = Float(x.pointee.integer_value)
                default: failed = true
                }
                if failed { break }
                count = i + 1
            }
        }
        return failed ? nil : out
    }

    /// Any value as JSON. Firestore-only types get their JSON form: timestamps as RFC 3339 text, references as
    /// names, bytes as base64url, geo points as `{latitude, longitude}`.
    static func json(_ v: UnsafePointer<FSValue>) -> JSONValue {
        let p = v.pointee
        switch p.value_type_case {
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_NULL_VALUE: return .null
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_BOOLEAN_VALUE: return .bool(p.boolean_value != 0)
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_INTEGER_VALUE: return .number(Double(p.integer_value))
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_DOUBLE_VALUE: return .number(p.double_value)
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_STRING_VALUE: return .string(string(v))
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_REFERENCE_VALUE:
            return .string(p.reference_value.map { String(cString: $0) } ?? "")
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_TIMESTAMP_VALUE:
            guard let t = p.timestamp_value else { return .null }
            return .string(Timestamp(seconds: t.pointee.seconds, nanos: t.pointee.nanos).rfc3339)
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_BYTES_VALUE:
            guard p.bytes_value.len > 0, let d = p.bytes_value.data else { return .string("") }
            return .string(Base64URL.encode(Array(UnsafeBufferPointer(start: d, count: p.bytes_value.len))))
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_GEO_POINT_VALUE:
            guard let g = p.geo_point_value else { return .null }
            return .object(["latitude": .number(g.pointee.latitude), "longitude": .number(g.pointee.longitude)])
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_ARRAY_VALUE:
            guard let a = p.array_value, let values = a.pointee.values else { return .array([]) }
            var out: [JSONValue] = []
            out.reserveCapacity(a.pointee.n_values)
            for i in 0..<a.pointee.n_values { if let x = values[i] { out.append(json(x)) } }
            return .array(out)
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_MAP_VALUE:
            guard let m = p.map_value, let entries = m.pointee.fields else { return .object([:]) }
            var out: [String: JSONValue] = [:]
            out.reserveCapacity(m.pointee.n_fields)
            for i in 0..<m.pointee.n_fields {
                guard let e = entries[i], let key = e.pointee.key, let value = e.pointee.value else { continue }
                out[String(cString: key)] = json(value)
            }
            return .object(out)
        default:
            return .null
        }
    }
}
