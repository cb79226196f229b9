import CMemoryProto
import MemoryDomain

/// Encodes and decodes the method messages of `orchestra.memory.v1.MemoryService` (the `payload` bytes of
/// Request and Response frames). The server decodes requests and encodes responses; clients the reverse.
public enum PayloadCodec {
    typealias Unpacker<T> = (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) ->
        UnsafeMutablePointer<T>?

    static func pack<T>(_ p: UnsafeMutablePointer<T>) -> [UInt8] {
        let base = UnsafeRawPointer(p).assumingMemoryBound(to: ProtobufCMessage.self)
        let size = protobuf_c_message_get_packed_size(base)
        if size == 0 { return [] }
        return [UInt8](unsafeUninitializedCapacity: size) { buf, n in
            n = protobuf_c_message_pack(base, buf.baseAddress!)
        }
    }

    static func unpack<T, R>(
        _ bytes: UnsafeRawBufferPointer, _ unpacker: Unpacker<T>, what: String,
        _ body: (UnsafeMutablePointer<T>) throws(MemoryError) -> R
    ) throws(MemoryError) -> R {
        guard let m = unpacker(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            throw .validation("payload is not a valid \(what)")
        }
        let base = UnsafeMutableRawPointer(m).assumingMemoryBound(to: ProtobufCMessage.self)
        defer { protobuf_c_message_free_unpacked(base, nil) }
        if let field = StringFieldCheck.firstStringWithNUL(bytes, base.pointee.descriptor) {
            throw .validation("\(field) contains a NUL character; strings must not")
        }
        return try body(m)
    }

    static func build<T>(
        _ type: T.Type, _ initFn: (UnsafeMutablePointer<T>) -> Void,
        _ fill: (Arena, UnsafeMutablePointer<T>) -> Void
    ) -> [UInt8] {
        let arena = Arena()
        let p = arena.alloc(T.self)
        initFn(p)
        fill(arena, p)
        return pack(p)
    }

    // MARK: - Requests

    /// Decodes a request payload of `method` (server side). Undecodable bytes are a ValidationError.
    public static func decodeRequest(_ method: MemoryMethod, _ bytes: UnsafeRawBufferPointer) throws(MemoryError)
        -> MethodRequest
    {
        let pre = "orchestra.memory.v1."
        switch method {
        case .ping:
            return try unpack(bytes, orchestra__memory__v1__ping_request__unpack, what: pre + "PingRequest") { _ in
                .ping
            }
        case .addMemoryItem:
            return try unpack(
                bytes, orchestra__memory__v1__add_memory_item_request__unpack, what: pre + "AddMemoryItemRequest"
            ) { (m) throws(MemoryError) in
                .addMemoryItem(
                    item: try readMemoryItem(m.pointee.item, field: "item"), upsert: m.pointee.upsert != 0,
                    rejectDuplicateContent: m.pointee.reject_duplicate_content != 0)
            }
        case .addMemoryItems:
            return try unpack(
                bytes, orchestra__memory__v1__add_memory_items_request__unpack, what: pre + "AddMemoryItemsRequest"
            ) { (m) throws(MemoryError) in
                var items: [MemoryItem] = []
                items.reserveCapacity(m.pointee.n_items)
                for i in 0..<m.pointee.n_items {
                    items.append(try readMemoryItem(m.pointee.items[i], field: "items[\(i)]"))
                }
                return .addMemoryItems(items: items, upsert: m.pointee.upsert != 0)
            }
        case .getMemoryItem:
            return try unpack(
                bytes, orchestra__memory__v1__get_memory_item_request__unpack, what: pre + "GetMemoryItemRequest"
            ) { (m) throws(MemoryError) in
                .getMemoryItem(id: try readString(m.pointee.id, field: "id"))
            }
        case .deleteMemoryItem:
            return try unpack(
                bytes, orchestra__memory__v1__delete_memory_item_request__unpack, what: pre + "DeleteMemoryItemRequest"
            ) { (m) throws(MemoryError) in
                .deleteMemoryItem(id: try readString(m.pointee.id, field: "id"))
            }
        case .getConversationHistory:
            return try unpack(
                bytes, orchestra__memory__v1__get_conversation_history_request__unpack,
                what: pre + "GetConversationHistoryRequest"
            ) { (m) throws(MemoryError) in
                let r = m.pointee
                return .getConversationHistory(
                    HistoryRequest(
                        userID: try readString(r.user_id, field: "user_id"),
                        sessionID: try readString(r.session_id, field: "session_id"),
                        limit: r.limit, itemType: try readString(r.item_type, field: "item_type"),
                        filters: try readStruct(r.filters, field: "filters"),
                        pageToken: try readString(r.page_token, field: "page_token")))
            }
        case .semanticSearch:
            return try unpack(
                bytes, orchestra__memory__v1__semantic_search_request__unpack, what: pre + "SemanticSearchRequest"
            ) { (m) throws(MemoryError) in
                let r = m.pointee
                var q = SearchRequest(
                    userID: try readString(r.user_id, field: "user_id"),
                    queryEmbedding: readFloats(r.query_embedding, r.n_query_embedding),
                    persona: try readString(r.persona, field: "persona"),
                    sessionID: try readString(r.session_id, field: "session_id"),
                    topK: r.top_k, minScore: r.min_score.map { $0.pointee.value })
                q.measure = Int32(bitPattern: UInt32(truncatingIfNeeded: r.measure.rawValue))
                return .semanticSearch(q)
            }
        case .checkDuplicate:
            return try unpack(
                bytes, orchestra__memory__v1__check_duplicate_request__unpack, what: pre + "CheckDuplicateRequest"
            ) { (m) throws(MemoryError) in
                .checkDuplicate(item: try readMemoryItem(m.pointee.item, field: "item"))
            }
        case .addRawAgentData:
            return try unpack(
                bytes, orchestra__memory__v1__add_raw_agent_data_request__unpack, what: pre + "AddRawAgentDataRequest"
            ) { (m) throws(MemoryError) in
                .addRawAgentData(try readAgentData(m.pointee.data, field: "data"))
            }
        case .getAgentData:
            return try unpack(
                bytes, orchestra__memory__v1__get_agent_data_request__unpack, what: pre + "GetAgentDataRequest"
            ) { (m) throws(MemoryError) in
                .getAgentData(id: try readString(m.pointee.id, field: "id"))
            }
        case .listAgentData:
            return try unpack(
                bytes, orchestra__memory__v1__list_agent_data_request__unpack, what: pre + "ListAgentDataRequest"
            ) { (m) throws(MemoryError) in
                .listAgentData(
                    ListAgentDataRequest(
                        agentID: try readString(m.pointee.agent_id, field: "agent_id"),
                        dataType: try readString(m.pointee.data_type, field: "data_type"),
                        limit: m.pointee.limit, pageToken: try readString(m.pointee.page_token, field: "page_token")))
            }
        case .cleanupExpiredItems:
            return try unpack(
                bytes, orchestra__memory__v1__cleanup_expired_items_request__unpack,
                what: pre + "CleanupExpiredItemsRequest"
            ) { _ in .cleanupExpiredItems }
        case .healthCheck:
            return try unpack(
                bytes, orchestra__memory__v1__health_check_request__unpack, what: pre + "HealthCheckRequest"
            ) { _ in .healthCheck }
        case .getMetrics:
            return try unpack(
                bytes, orchestra__memory__v1__get_metrics_request__unpack, what: pre + "GetMetricsRequest"
            ) { _ in .getMetrics }
        }
    }

    public static func decodeRequest(_ method: MemoryMethod, _ bytes: [UInt8]) throws(MemoryError) -> MethodRequest {
        let r: Result<MethodRequest, MemoryError> = bytes.withUnsafeBytes { b in
            do throws(MemoryError) { return .success(try decodeRequest(method, b)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    /// Encodes a request payload (client side).
    public static func encodeRequest(_ request: MethodRequest) -> [UInt8] {
        switch request {
        case .ping, .cleanupExpiredItems, .healthCheck, .getMetrics:
            return []
        case .addMemoryItem(let item, let upsert, let reject):
            return build(
                Orchestra__Memory__V1__AddMemoryItemRequest.self, orchestra__memory__v1__add_memory_item_request__init
            ) { a, p in
                p.pointee.item = a.memoryItem(item)
                p.pointee.upsert = upsert ? 1 : 0
                p.pointee.reject_duplicate_content = reject ? 1 : 0
            }
        case .addMemoryItems(let items, let upsert):
            return build(
                Orchestra__Memory__V1__AddMemoryItemsRequest.self, orchestra__memory__v1__add_memory_items_request__init
            ) { a, p in
                p.pointee.n_items = items.count
                p.pointee.items = a.messages(items) { a.memoryItem($0) }
                p.pointee.upsert = upsert ? 1 : 0
            }
        case .getMemoryItem(let id):
            return build(
                Orchestra__Memory__V1__GetMemoryItemRequest.self, orchestra__memory__v1__get_memory_item_request__init
            ) { a, p in
                p.pointee.id = a.string(id)
            }
        case .deleteMemoryItem(let id):
            return build(
                Orchestra__Memory__V1__DeleteMemoryItemRequest.self,
                orchestra__memory__v1__delete_memory_item_request__init
            ) { a, p in
                p.pointee.id = a.string(id)
            }
        case .getConversationHistory(let r):
            return build(
                Orchestra__Memory__V1__GetConversationHistoryRequest.self,
                orchestra__memory__v1__get_conversation_history_request__init
            ) { a, p in
                p.pointee.user_id = a.string(r.userID)
                p.pointee.session_id = a.string(r.sessionID)
                p.pointee.limit = r.limit
                p.pointee.item_type = a.string(r.itemType)
                p.pointee.filters = a.optionalStruct(r.filters)
                p.pointee.page_token = a.string(r.pageToken)
            }
        case .semanticSearch(let r):
            return build(
                Orchestra__Memory__V1__SemanticSearchRequest.self, orchestra__memory__v1__semantic_search_request__init
            ) { a, p in
                p.pointee.user_id = a.string(r.userID)
                p.pointee.n_query_embedding = r.queryEmbedding.count
                p.pointee.query_embedding = a.floats(r.queryEmbedding)
                p.pointee.persona = a.string(r.persona)
                p.pointee.session_id = a.string(r.sessionID)
                p.pointee.top_k = r.topK
                if let min = r.minScore {
                    let d = a.alloc(Google__Protobuf__DoubleValue.self)
                    google__protobuf__double_value__init(d)
                    d.pointee.value = min
                    p.pointee.min_score = d
                }
                p.pointee.measure = Orchestra__Memory__V1__DistanceMeasure(
                    rawValue: numericCast(UInt32(bitPattern: r.measure)))
            }
        case .checkDuplicate(let item):
            return build(
                Orchestra__Memory__V1__CheckDuplicateRequest.self, orchestra__memory__v1__check_duplicate_request__init
            ) { a, p in
                p.pointee.item = a.memoryItem(item)
            }
        case .addRawAgentData(let d):
            return build(
                Orchestra__Memory__V1__AddRawAgentDataRequest.self,
                orchestra__memory__v1__add_raw_agent_data_request__init
            ) { a, p in
                p.pointee.data = a.agentData(d)
            }
        case .getAgentData(let id):
            return build(
                Orchestra__Memory__V1__GetAgentDataRequest.self, orchestra__memory__v1__get_agent_data_request__init
            ) { a, p in
                p.pointee.id = a.string(id)
            }
        case .listAgentData(let r):
            return build(
                Orchestra__Memory__V1__ListAgentDataRequest.self, orchestra__memory__v1__list_agent_data_request__init
            ) { a, p in
                p.pointee.agent_id = a.string(r.agentID)
                p.pointee.data_type = a.string(r.dataType)
                p.pointee.limit = r.limit
                p.pointee.page_token = a.string(r.pageToken)
            }
        }
    }
}
