import CMemoryProto
import MemoryDomain

extension PayloadCodec {
    /// Encodes a successful response payload (server side).
    public static func encodeResponse(_ response: MethodResponse) -> [UInt8] {
        switch response {
        case .ping(let version, let uptime):
            return build(Orchestra__Memory__V1__PingResponse.self, orchestra__memory__v1__ping_response__init) { a, p in
                p.pointee.server_version = a.string(version)
                p.pointee.uptime_ms = uptime
            }
        case .addMemoryItem(let id):
            return build(
                Orchestra__Memory__V1__AddMemoryItemResponse.self, orchestra__memory__v1__add_memory_item_response__init
            ) { a, p in
                p.pointee.id = a.string(id)
            }
        case .addMemoryItems(let results):
            return build(
                Orchestra__Memory__V1__AddMemoryItemsResponse.self,
                orchestra__memory__v1__add_memory_items_response__init
            ) { a, p in
                p.pointee.n_results = results.count
                p.pointee.results = a.messages(results) { r in
                    let e = a.alloc(Orchestra__Memory__V1__ItemResult.self)
                    orchestra__memory__v1__item_result__init(e)
                    e.pointee.id = a.string(r.id)
                    e.pointee.status = r.unchanged ? a.unchangedStatus() : a.status(r.error)
                    return e
                }
            }
        case .getMemoryItem(let item):
            return build(
                Orchestra__Memory__V1__GetMemoryItemResponse.self, orchestra__memory__v1__get_memory_item_response__init
            ) { a, p in
                p.pointee.item = a.memoryItem(item)
            }
        case .deleteMemoryItem, .cleanupExpiredItems(deletedCount: 0):
            return []
        case .getConversationHistory(let page):
            return build(
                Orchestra__Memory__V1__GetConversationHistoryResponse.self,
                orchestra__memory__v1__get_conversation_history_response__init
            ) { a, p in
                p.pointee.n_items = page.items.count
                p.pointee.items = a.messages(page.items) { a.memoryItem($0) }
                p.pointee.next_page_token = a.string(page.nextPageToken)
            }
        case .semanticSearch(let results):
            return build(
                Orchestra__Memory__V1__SemanticSearchResponse.self,
                orchestra__memory__v1__semantic_search_response__init
            ) { a, p in
                p.pointee.n_results = results.count
                p.pointee.results = a.messages(results) { r in
                    let e = a.alloc(Orchestra__Memory__V1__ScoredMemoryItem.self)
                    orchestra__memory__v1__scored_memory_item__init(e)
                    e.pointee.item = a.memoryItem(r.item)
                    e.pointee.score = r.score
                    return e
                }
            }
        case .checkDuplicate(let duplicate, let existing):
            return build(
                Orchestra__Memory__V1__CheckDuplicateResponse.self,
                orchestra__memory__v1__check_duplicate_response__init
            ) { a, p in
                p.pointee.duplicate = duplicate ? 1 : 0
                p.pointee.existing_id = a.string(existing)
            }
        case .addRawAgentData(let id):
            return build(
                Orchestra__Memory__V1__AddRawAgentDataResponse.self,
                orchestra__memory__v1__add_raw_agent_data_response__init
            ) { a, p in
                p.pointee.id = a.string(id)
            }
        case .getAgentData(let d):
            return build(
                Orchestra__Memory__V1__GetAgentDataResponse.self, orchestra__memory__v1__get_agent_data_response__init
            ) { a, p in
                p.pointee.data = a.agentData(d)
            }
        case .listAgentData(let page):
            return build(
                Orchestra__Memory__V1__ListAgentDataResponse.self, orchestra__memory__v1__list_agent_data_response__init
            ) { a, p in
                p.pointee.n_items = page.items.count
                p.pointee.items = a.messages(page.items) { a.agentData($0) }
                p.pointee.next_page_token = a.string(page.nextPageToken)
            }
        case .cleanupExpiredItems(let n):
            return build(
                Orchestra__Memory__V1__CleanupExpiredItemsResponse.self,
                orchestra__memory__v1__cleanup_expired_items_response__init
            ) { _, p in
                p.pointee.deleted_count = n
            }
        case .healthCheck(let h):
            return build(
                Orchestra__Memory__V1__HealthCheckResponse.self, orchestra__memory__v1__health_check_response__init
            ) { a, p in
                p.pointee.status = a.string(h.status)
                p.pointee.firestore = h.firestore ? 1 : 0
                p.pointee.details = a.structValue(h.details)
            }
        case .listMemoryItems(let page):
            return build(
                Orchestra__Memory__V1__ListMemoryItemsResponse.self,
                orchestra__memory__v1__list_memory_items_response__init
            ) { a, p in
                p.pointee.n_items = page.items.count
                p.pointee.items = a.messages(page.items) { a.memoryItem($0) }
                p.pointee.next_page_token = a.string(page.nextPageToken)
            }
        case .getMetrics(let text):
            return build(
                Orchestra__Memory__V1__GetMetricsResponse.self, orchestra__memory__v1__get_metrics_response__init
            ) { a, p in p.pointee.text = a.string(text) }
        }
    }

    /// Decodes a successful response payload of `method` (client side).
    public static func decodeResponse(_ method: MemoryMethod, _ bytes: UnsafeRawBufferPointer) throws(MemoryError)
        -> MethodResponse
    {
        let pre = "orchestra.memory.v1."
        switch method {
        case .ping:
            return try unpack(bytes, orchestra__memory__v1__ping_response__unpack, what: pre + "PingResponse") {
                (m) throws(MemoryError) in
                .ping(
                    serverVersion: try readString(m.pointee.server_version, field: "server_version"),
                    uptimeMs: m.pointee.uptime_ms)
            }
        case .addMemoryItem:
            return try unpack(
                bytes, orchestra__memory__v1__add_memory_item_response__unpack, what: pre + "AddMemoryItemResponse"
            ) { (m) throws(MemoryError) in
                .addMemoryItem(id: try readString(m.pointee.id, field: "id"))
            }
        case .addMemoryItems:
            return try unpack(
                bytes, orchestra__memory__v1__add_memory_items_response__unpack, what: pre + "AddMemoryItemsResponse"
            ) { (m) throws(MemoryError) in
                var out: [ItemResult] = []
                try forEach(m.pointee.results, m.pointee.n_results) { (_, r) throws(MemoryError) in
                    out.append(
                        ItemResult(
                            id: try readString(r.pointee.id, field: "id"), error: try readStatus(r.pointee.status),
                            unchanged: try readUnchanged(r.pointee.status)))
                }
                return .addMemoryItems(out)
            }
        case .getMemoryItem:
            return try unpack(
                bytes, orchestra__memory__v1__get_memory_item_response__unpack, what: pre + "GetMemoryItemResponse"
            ) { (m) throws(MemoryError) in
                .getMemoryItem(try readMemoryItem(m.pointee.item, field: "item"))
            }
        case .deleteMemoryItem:
            return .deleteMemoryItem
        case .getConversationHistory:
            return try unpack(
                bytes, orchestra__memory__v1__get_conversation_history_response__unpack,
                what: pre + "GetConversationHistoryResponse"
            ) { (m) throws(MemoryError) in
                var items: [MemoryItem] = []
                try forEach(m.pointee.items, m.pointee.n_items) { (i, p) throws(MemoryError) in
                    items.append(try readMemoryItem(p, field: "items[\(i)]"))
                }
                return .getConversationHistory(
                    Page(
                        items: items, nextPageToken: try readString(m.pointee.next_page_token, field: "next_page_token")
                    ))
            }
        case .semanticSearch:
            return try unpack(
                bytes, orchestra__memory__v1__semantic_search_response__unpack, what: pre + "SemanticSearchResponse"
            ) { (m) throws(MemoryError) in
                var out: [ScoredItem] = []
                try forEach(m.pointee.results, m.pointee.n_results) { (i, r) throws(MemoryError) in
                    out.append(
                        ScoredItem(
                            item: try readMemoryItem(r.pointee.item, field: "results[\(i)].item"),
                            score: r.pointee.score))
                }
                return .semanticSearch(out)
            }
        case .checkDuplicate:
            return try unpack(
                bytes, orchestra__memory__v1__check_duplicate_response__unpack, what: pre + "CheckDuplicateResponse"
            ) { (m) throws(MemoryError) in
                .checkDuplicate(
                    duplicate: m.pointee.duplicate != 0,
                    existingID: try readString(m.pointee.existing_id, field: "existing_id"))
            }
        case .addRawAgentData:
            return try unpack(
                bytes, orchestra__memory__v1__add_raw_agent_data_response__unpack, what: pre + "AddRawAgentDataResponse"
            ) { (m) throws(MemoryError) in
                .addRawAgentData(id: try readString(m.pointee.id, field: "id"))
            }
        case .getAgentData:
            return try unpack(
                bytes, orchestra__memory__v1__get_agent_data_response__unpack, what: pre + "GetAgentDataResponse"
            ) { (m) throws(MemoryError) in
                .getAgentData(try readAgentData(m.pointee.data, field: "data"))
            }
        case .listAgentData:
            return try unpack(
                bytes, orchestra__memory__v1__list_agent_data_response__unpack, what: pre + "ListAgentDataResponse"
            ) { (m) throws(MemoryError) in
                var items: [AgentData] = []
                try forEach(m.pointee.items, m.pointee.n_items) { (i, p) throws(MemoryError) in
                    items.append(try readAgentData(p, field: "items[\(i)]"))
                }
                return .listAgentData(
                    Page(
                        items: items, nextPageToken: try readString(m.pointee.next_page_token, field: "next_page_token")
                    ))
            }
        case .cleanupExpiredItems:
            return try unpack(
                bytes, orchestra__memory__v1__cleanup_expired_items_response__unpack,
                what: pre + "CleanupExpiredItemsResponse"
            ) { m in
                .cleanupExpiredItems(deletedCount: m.pointee.deleted_count)
            }
        case .healthCheck:
            return try unpack(
                bytes, orchestra__memory__v1__health_check_response__unpack, what: pre + "HealthCheckResponse"
            ) { (m) throws(MemoryError) in
                .healthCheck(
                    HealthReport(
                        status: try readString(m.pointee.status, field: "status"), firestore: m.pointee.firestore != 0,
                        details: try readStruct(m.pointee.details, field: "details")))
            }
        case .listMemoryItems:
            return try unpack(
                bytes, orchestra__memory__v1__list_memory_items_response__unpack, what: pre + "ListMemoryItemsResponse"
            ) { (m) throws(MemoryError) in
                var items: [MemoryItem] = []
                try forEach(m.pointee.items, m.pointee.n_items) { (i, p) throws(MemoryError) in
                    items.append(try readMemoryItem(p, field: "items[\(i)]"))
                }
                return .listMemoryItems(
                    Page(
                        items: items, nextPageToken: try readString(m.pointee.next_page_token, field: "next_page_token")
                    ))
            }
        case .getMetrics:
            return try unpack(
                bytes, orchestra__memory__v1__get_metrics_response__unpack, what: pre + "GetMetricsResponse"
            ) { (m) throws(MemoryError) in .getMetrics(text: try readString(m.pointee.text, field: "text")) }
        }
    }

    public static func decodeResponse(_ method: MemoryMethod, _ bytes: [UInt8]) throws(MemoryError) -> MethodResponse {
        let r: Result<MethodResponse, MemoryError> = bytes.withUnsafeBytes { b in
            do throws(MemoryError) { return .success(try decodeResponse(method, b)) } catch { return .failure(error) }
        }
        return try r.get()
    }
}
