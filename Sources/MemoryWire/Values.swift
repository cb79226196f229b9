import CMemoryProto
import MemoryDomain
import MemoryUtilities

// Conversions of the shared messages (Timestamp, Struct/Value, Status, MemoryItem, AgentData) between
// protobuf-c structs and MemoryDomain values.

typealias PTimestamp = Google__Protobuf__Timestamp
typealias PStruct = Google__Protobuf__Struct
typealias PValue = Google__Protobuf__Value
typealias PListValue = Google__Protobuf__ListValue
typealias PStatus = Orchestra__Rpc__V1__Status
typealias PMemoryItem = Orchestra__Memory__V1__MemoryItem
typealias PAgentData = Orchestra__Memory__V1__AgentData

/// Deepest Struct/Value nesting accepted from the wire (protobuf-c itself recurses without a bound).
let maxValueDepth = 64

extension Arena {
    func timestamp(_ t: Timestamp?) -> UnsafeMutablePointer<PTimestamp>? {
        guard let t else { return nil }
        let p = alloc(PTimestamp.self)
        google__protobuf__timestamp__init(p)
        p.pointee.seconds = t.seconds
        p.pointee.nanos = t.nanos
        return p
    }

    func structValue(_ fields: [String: JSONValue]) -> UnsafeMutablePointer<PStruct> {
        let p = alloc(PStruct.self)
        google__protobuf__struct__init(p)
        let keys = fields.keys.sorted()
        p.pointee.n_fields = keys.count
        p.pointee.fields = messages(keys) { key in
            let e = alloc(Google__Protobuf__Struct__FieldsEntry.self)
            google__protobuf__struct__fields_entry__init(e)
            e.pointee.key = string(key) ?? emptyCString()
            e.pointee.value = value(fields[key]!)
            return e
        }
        return p
    }

    func optionalStruct(_ fields: [String: JSONValue]) -> UnsafeMutablePointer<PStruct>? {
        fields.isEmpty ? nil : structValue(fields)
    }

    /// Map keys may be empty strings but must not be NULL when packed.
    func emptyCString() -> UnsafeMutablePointer<CChar> {
        let p = alloc(CChar.self, count: 1)
        return p
    }

    func value(_ v: JSONValue) -> UnsafeMutablePointer<PValue> {
        let p = alloc(PValue.self)
        google__protobuf__value__init(p)
        switch v {
        case .null:
            p.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE
            p.pointee.null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE
        case .bool(let b):
            p.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE
            p.pointee.bool_value = b ? 1 : 0
        case .number(let n):
            p.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE
            p.pointee.number_value = n
        case .string(let s):
            p.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE
            p.pointee.string_value = string(s) ?? emptyCString()
        case .array(let a):
            let l = alloc(PListValue.self)
            google__protobuf__list_value__init(l)
            l.pointee.n_values = a.count
            l.pointee.values = messages(a) { value($0) }
            p.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE
            p.pointee.list_value = l
        case .object(let o):
            p.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE
            p.pointee.struct_value = structValue(o)
        }
        return p
    }

    func status(_ e: MemoryError?) -> UnsafeMutablePointer<PStatus> {
        let p = alloc(PStatus.self)
        orchestra__rpc__v1__status__init(p)
        guard let e else { return p }
        p.pointee.code = e.code.rawValue
        p.pointee.error_type = Orchestra__Rpc__V1__ErrorType(rawValue: numericCast(e.type.rawValue))
        p.pointee.message = string(e.message)
        p.pointee.operation = string(e.operation)
        let keys = e.details.keys.sorted()
        p.pointee.n_details = keys.count
        p.pointee.details = messages(keys) { key in
            let d = alloc(Orchestra__Rpc__V1__Status__DetailsEntry.self)
            orchestra__rpc__v1__status__details_entry__init(d)
            d.pointee.key = string(key) ?? emptyCString()
            d.pointee.value = string(e.details[key]!) ?? emptyCString()
            return d
        }
        return p
    }

    /// An OK ItemResult status saying the item was stored already, exactly so: `details.unchanged = "true"`.
    func unchangedStatus() -> UnsafeMutablePointer<PStatus> {
        let p = status(nil)
        p.pointee.message = string("already stored, unchanged")
        p.pointee.n_details = 1
        p.pointee.details = messages(["unchanged"]) { key in
            let d = alloc(Orchestra__Rpc__V1__Status__DetailsEntry.self)
            orchestra__rpc__v1__status__details_entry__init(d)
            d.pointee.key = string(key) ?? emptyCString()
            d.pointee.value = string("true") ?? emptyCString()
            return d
        }
        return p
    }

    func memoryItem(_ item: MemoryItem) -> UnsafeMutablePointer<PMemoryItem> {
        let p = alloc(PMemoryItem.self)
        orchestra__memory__v1__memory_item__init(p)
        p.pointee.id = string(item.id)
        p.pointee.user_id = string(item.userID)
        p.pointee.session_id = string(item.sessionID)
        p.pointee.timestamp = timestamp(item.timestamp)
        p.pointee.item_type = string(item.itemType)
        p.pointee.persona_active = string(item.personaActive)
        p.pointee.text_content = string(item.textContent)
        p.pointee.n_embedding = item.embedding.count
        p.pointee.embedding = floats(item.embedding)
        p.pointee.metadata = optionalStruct(item.metadata)
        p.pointee.expiration = timestamp(item.expiration)
        return p
    }

    func agentData(_ d: AgentData) -> UnsafeMutablePointer<PAgentData> {
        let p = alloc(PAgentData.self)
        orchestra__memory__v1__agent_data__init(p)
        p.pointee.id = string(d.id)
        p.pointee.agent_id = string(d.agentID)
        p.pointee.timestamp = timestamp(d.timestamp)
        p.pointee.data_type = string(d.dataType)
        p.pointee.content = d.content.map { value($0) }
        p.pointee.metadata = optionalStruct(d.metadata)
        p.pointee.expiration = timestamp(d.expiration)
        return p
    }
}

// MARK: - Reading

func readTimestamp(_ p: UnsafeMutablePointer<PTimestamp>?) -> Timestamp? {
    guard let p else { return nil }
    return Timestamp(seconds: p.pointee.seconds, nanos: p.pointee.nanos)
}

func readStruct(_ p: UnsafeMutablePointer<PStruct>?, field: String, depth: Int = 0) throws(MemoryError) -> [String:
    JSONValue]
{
    guard let p else { return [:] }
    guard depth < maxValueDepth else { throw .validation("\(field) is nested deeper than \(maxValueDepth) levels") }
    var out: [String: JSONValue] = [:]
    out.reserveCapacity(p.pointee.n_fields)
    try forEach(p.pointee.fields, p.pointee.n_fields) { (_, e) throws(MemoryError) in
        let key = try readString(e.pointee.key, field: "\(field) key")
        out[key] = try readValue(e.pointee.value, field: "\(field).\(key)", depth: depth + 1)
    }
    return out
}

func readValue(_ p: UnsafeMutablePointer<PValue>?, field: String, depth: Int = 0) throws(MemoryError) -> JSONValue {
    guard let p else { return .null }
    guard depth < maxValueDepth else { throw .validation("\(field) is nested deeper than \(maxValueDepth) levels") }
    switch p.pointee.kind_case {
    case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE: return .bool(p.pointee.bool_value != 0)
    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE: return .number(p.pointee.number_value)
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
        return .string(try readString(p.pointee.string_value, field: field))
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
        return .object(try readStruct(p.pointee.struct_value, field: field, depth: depth + 1))
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
        guard let l = p.pointee.list_value else { return .array([]) }
        var a: [JSONValue] = []
        a.reserveCapacity(l.pointee.n_values)
        try forEach(l.pointee.values, l.pointee.n_values) { (i, v) throws(MemoryError) in
            a.append(try readValue(v, field: "\(field)[\(i)]", depth: depth + 1))
        }
        return .array(a)
    default: return .null
    }
}

func readStatus(_ p: UnsafeMutablePointer<PStatus>?) throws(MemoryError) -> MemoryError? {
    guard let p, p.pointee.code != 0 else { return nil }
    var details: [String: String] = [:]
    try forEach(p.pointee.details, p.pointee.n_details) { (_, d) throws(MemoryError) in
        details[try readString(d.pointee.key, field: "status.details key")] = try readString(
            d.pointee.value, field: "status.details")
    }
    return MemoryError(
        code: StatusCode(rawValue: p.pointee.code) ?? .unknown,
        type: ErrorType(rawValue: Int32(truncatingIfNeeded: p.pointee.error_type.rawValue)) ?? .unspecified,
        message: try readString(p.pointee.message, field: "status.message"),
        operation: try readString(p.pointee.operation, field: "status.operation"),
        details: details)
}

/// True for an OK status carrying `details.unchanged = "true"` (see `Arena.unchangedStatus`).
func readUnchanged(_ p: UnsafeMutablePointer<PStatus>?) throws(MemoryError) -> Bool {
    guard let p, p.pointee.code == 0 else { return false }
    var unchanged = false
    try forEach(p.pointee.details, p.pointee.n_details) { (_, d) throws(MemoryError) in
        if try readString(d.pointee.key, field: "status.details key") == "unchanged" {
            unchanged = try readString(d.pointee.value, field: "status.details") == "true"
        }
    }
    return unchanged
}

func readMemoryItem(_ p: UnsafeMutablePointer<PMemoryItem>?, field: String) throws(MemoryError) -> MemoryItem {
    guard let p else { return MemoryItem() }
    let m = p.pointee
    return MemoryItem(
        id: try readString(m.id, field: "\(field).id"),
        userID: try readString(m.user_id, field: "\(field).user_id"),
        sessionID: try readString(m.session_id, field: "\(field).session_id"),
        timestamp: readTimestamp(m.timestamp),
        itemType: try readString(m.item_type, field: "\(field).item_type"),
        personaActive: try readString(m.persona_active, field: "\(field).persona_active"),
        textContent: try readString(m.text_content, field: "\(field).text_content"),
        embedding: readFloats(m.embedding, m.n_embedding),
        metadata: try readStruct(m.metadata, field: "\(field).metadata"),
        expiration: readTimestamp(m.expiration))
}

func readAgentData(_ p: UnsafeMutablePointer<PAgentData>?, field: String) throws(MemoryError) -> AgentData {
    guard let p else { return AgentData() }
    let m = p.pointee
    return AgentData(
        id: try readString(m.id, field: "\(field).id"),
        agentID: try readString(m.agent_id, field: "\(field).agent_id"),
        timestamp: readTimestamp(m.timestamp),
        dataType: try readString(m.data_type, field: "\(field).data_type"),
        content: m.content == nil ? nil : try readValue(m.content, field: "\(field).content"),
        metadata: try readStruct(m.metadata, field: "\(field).metadata"),
        expiration: readTimestamp(m.expiration))
}
