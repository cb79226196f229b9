import CFirestoreProto
import MemoryDomain
import MemoryUtilities

/// Building Firestore `Value`s, documents and writes (SPEC §9 layout) straight into protobuf-c structs.
extension ProtoArena {
    func value(_ fill: (UnsafeMutablePointer<FSValue>) -> Void) -> UnsafeMutablePointer<FSValue> {
        let v = message(FSValue.self, google__firestore__v1__value__init)
        fill(v)
        return v
    }

    func stringValue(_ s: String) -> UnsafeMutablePointer<FSValue> {
        value {
            $0.pointee.value_type_case = GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_STRING_VALUE
            $0.pointee.string_value = string(s)
        }
    }

    func referenceValue(_ name: String) -> UnsafeMutablePointer<FSValue> {
        value {
            $0.pointee.value_type_case = GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_REFERENCE_VALUE
            $0.pointee.reference_value = string(name)
        }
    }

    func timestamp(_ t: Timestamp) -> UnsafeMutablePointer<FSTimestamp> {
        let ts = message(FSTimestamp.self, google__protobuf__timestamp__init)
        ts.pointee.seconds = t.seconds
        ts.pointee.nanos = t.nanos
        return ts
    }

    func timestampValue(_ t: Timestamp) -> UnsafeMutablePointer<FSValue> {
        value {
            $0.pointee.value_type_case = GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_TIMESTAMP_VALUE
            $0.pointee.timestamp_value = timestamp(t)
        }
    }

    func doubleValue(_ d: Double) -> UnsafeMutablePointer<FSValue> {
        value {
            $0.pointee.value_type_case = GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_DOUBLE_VALUE
            $0.pointee.double_value = d
        }
    }

    func mapValue(_ fields: [(String, UnsafeMutablePointer<FSValue>)]) -> UnsafeMutablePointer<FSValue> {
        let map = message(FSMapValue.self, google__firestore__v1__map_value__init)
        map.pointee.n_fields = fields.count
        map.pointee.fields = array(fields) { (key, v) in
            let e = message(FSMapEntry.self, google__firestore__v1__map_value__fields_entry__init)
            e.pointee.key = string(key)
            e.pointee.value = v
            return e
        }
        return value {
            $0.pointee.value_type_case = GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_MAP_VALUE
            $0.pointee.map_value = map
        }
    }

    /// A JSON value as Firestore stores it. Integral numbers within ±2^53 are `integer_value` (exact both
    /// ways), all others `double_value`; both read back as JSON numbers, so a value round-trips unchanged.
    func jsonValue(_ json: JSONValue) -> UnsafeMutablePointer<FSValue> {
        switch json {
        case .null:
            return value {
                $0.pointee.value_type_case = GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_NULL_VALUE
                $0.pointee.null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE
            }
        case .bool(let b):
            return value {
                $0.pointee.value_type_case = GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_BOOLEAN_VALUE
                $0.pointee.boolean_value = b ? 1 : 0
            }
        case .number(let n):
            if n == n.rounded(), abs(n) <= 9_007_199_254_740_992 {
                return value {
                    $0.pointee.value_type_case = GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_INTEGER_VALUE
                    $0.pointee.integer_value = Int64(n)
                }
            }
            return doubleValue(n)
        case .string(let s):
            return stringValue(s)
        case .array(let elements):
            let arr = message(FSArrayValue.self, google__firestore__v1__array_value__init)
            arr.pointee.n_values = elements.count
            arr.pointee.values = array(elements) { jsonValue($0) }
            return value {
                $0.pointee.value_type_case = GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_ARRAY_VALUE
                $0.pointee.array_value = arr
            }
        case .object(let o):
            return mapValue(o.sorted { $0.key < $1.key }.map { ($0.key, jsonValue($0.value)) })
        }
    }

    /// A vector value (SPEC §9): a map with `__type__: "__vector__"` and `value`, an array of doubles. The
    /// doubles are one C array of values filled in a single pass; doubles given as such are kept bit for bit
    /// (`memoryd migrate` converts the old manager's arrays).
    func vectorValue<F: BinaryFloatingPoint>(_ values: [F]) -> UnsafeMutablePointer<FSValue> {
        mapValue([("__type__", stringValue("__vector__")), ("value", doublesArray(values))])
    }

    /// A plain array of doubles (how the original manager stored embeddings).
    func doublesArray<F: BinaryFloatingPoint>(_ values: [F]) -> UnsafeMutablePointer<FSValue> {
        let arr = message(FSArrayValue.self, google__firestore__v1__array_value__init)
        arr.pointee.n_values = values.count
        if !values.isEmpty {
            let cells = alloc(FSValue.self, count: values.count)
            let pointers = alloc(UnsafeMutablePointer<FSValue>?.self, count: values.count)
            for (i, x) in values.enumerated() {
                google__firestore__v1__value__init(cells + i)
                cells[i].value_type_case = GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_DOUBLE_VALUE
                cells[i].double_value = Double(x)
                pointers[i] = cells + i
            }
            arr.pointee.values = pointers
        }
        return value {
            $0.pointee.value_type_case = GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_ARRAY_VALUE
            $0.pointee.array_value = arr
        }
    }

    func document(name: String, fields: [(String, UnsafeMutablePointer<FSValue>)]) -> UnsafeMutablePointer<FSDocument> {
        let doc = message(FSDocument.self, google__firestore__v1__document__init)
        doc.pointee.name = string(name)
        doc.pointee.n_fields = fields.count
        doc.pointee.fields = array(fields) { (key, v) in
            let e = message(FSDocumentEntry.self, google__firestore__v1__document__fields_entry__init)
            e.pointee.key = string(key)
            e.pointee.value = v
            return e
        }
        return doc
    }

    /// A memory item as a document (SPEC §9): `embedding` absent when empty, `expiration` when unset.
    func document(_ item: MemoryItem, name: String) -> UnsafeMutablePointer<FSDocument> {
        var fields: [(String, UnsafeMutablePointer<FSValue>)] = [
            ("id", stringValue(item.id)), ("user_id", stringValue(item.userID)),
            ("session_id", stringValue(item.sessionID)), ("item_type", stringValue(item.itemType)),
            ("persona_active", stringValue(item.personaActive)), ("text_content", stringValue(item.textContent)),
            ("metadata", jsonValue(.object(item.metadata))),
        ]
        if let t = item.timestamp { fields.append(("timestamp", timestampValue(t))) }
        if let t = item.expiration { fields.append(("expiration", timestampValue(t))) }
        if !item.embedding.isEmpty { fields.append(("embedding", vectorValue(item.embedding))) }
        return document(name: name, fields: fields)
    }

    /// Agent data as a document (SPEC §9).
    func document(_ data: AgentData, name: String) -> UnsafeMutablePointer<FSDocument> {
        var fields: [(String, UnsafeMutablePointer<FSValue>)] = [
            ("id", stringValue(data.id)), ("agent_id", stringValue(data.agentID)),
            ("data_type", stringValue(data.dataType)), ("metadata", jsonValue(.object(data.metadata))),
        ]
        if let c = data.content { fields.append(("content", jsonValue(c))) }
        if let t = data.timestamp { fields.append(("timestamp", timestampValue(t))) }
        if let t = data.expiration { fields.append(("expiration", timestampValue(t))) }
        return document(name: name, fields: fields)
    }

    // MARK: - Writes

    enum Precondition {
        case none
        case mustNotExist
        case mustExist
        case unchangedSince(DocumentVersion)
    }

    private func precondition(_ p: Precondition) -> UnsafeMutablePointer<FSPrecondition>? {
        let c: UnsafeMutablePointer<FSPrecondition>
        switch p {
        case .none:
            return nil
        case .mustNotExist, .mustExist:
            c = message(FSPrecondition.self, google__firestore__v1__precondition__init)
            c.pointee.condition_type_case = GOOGLE__FIRESTORE__V1__PRECONDITION__CONDITION_TYPE_EXISTS
            if case .mustExist = p { c.pointee.exists = 1 } else { c.pointee.exists = 0 }
        case .unchangedSince(let version):
            c = message(FSPrecondition.self, google__firestore__v1__precondition__init)
            c.pointee.condition_type_case = GOOGLE__FIRESTORE__V1__PRECONDITION__CONDITION_TYPE_UPDATE_TIME
            let ts = message(FSTimestamp.self, google__protobuf__timestamp__init)
            ts.pointee.seconds = version.seconds
            ts.pointee.nanos = version.nanos
            c.pointee.update_time = ts
        }
        return c
    }

    /// An `update` write: of the whole document (all fields replaced) without `mask`, else of the field paths
    /// in `mask` only (the others are left as stored).
    func updateWrite(_ document: UnsafeMutablePointer<FSDocument>, _ p: Precondition, mask: [String]? = nil)
        -> UnsafeMutablePointer<FSWrite>
    {
        let w = message(FSWrite.self, google__firestore__v1__write__init)
        w.pointee.operation_case = GOOGLE__FIRESTORE__V1__WRITE__OPERATION_UPDATE
        w.pointee.update = document
        w.pointee.current_document = precondition(p)
        if let mask { w.pointee.update_mask = documentMask(mask) }
        return w
    }

    /// A DocumentMask of `paths`: the fields a read returns, or those an update writes.
    func documentMask(_ paths: [String]) -> UnsafeMutablePointer<FSDocumentMask> {
        let m = message(FSDocumentMask.self, google__firestore__v1__document_mask__init)
        m.pointee.n_field_paths = paths.count
        m.pointee.field_paths = array(paths, string)
        return m
    }

    func deleteWrite(name: String, _ p: Precondition) -> UnsafeMutablePointer<FSWrite> {
        let w = message(FSWrite.self, google__firestore__v1__write__init)
        w.pointee.operation_case = GOOGLE__FIRESTORE__V1__WRITE__OPERATION_DELETE
        w.pointee.delete_ = string(name)
        w.pointee.current_document = precondition(p)
        return w
    }
}
