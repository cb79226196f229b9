import MemoryUtilities

/// The methods of SPEC §5 on top of one store connection: validation, defaults and `content_hash` here, so
/// that both backends see the same normalized input and cannot drift apart.
public final class MemoryService {
    public let store: StoreConnection
    public let limits: Limits
    public let version: String
    /// How large an answer may be (nil: unbounded, as for tools that call the service directly).
    public let responseBudget: ResponseBudget?
    /// Told about every item this service stored or deleted, after the store said so and before the call
    /// returns: the daemon's read cache follows the store through it.
    public var onChange: ((StoreChange) -> Void)?
    private let startedAt: UInt64
    private let healthFigures: @Sendable () -> HealthFigures

    /// What the server and backend add to a health report.
    public struct HealthFigures: Sendable {
        public var backend: String
        public var firestore: Bool
        public var details: [String: JSONValue]

        public init(backend: String, firestore: Bool, details: [String: JSONValue]) {
            self.backend = backend
            self.firestore = firestore
            self.details = details
        }
    }

    public init(
        store: StoreConnection, limits: Limits, version: String, startedAtUptimeNanos: UInt64,
        responseBudget: ResponseBudget? = nil, healthFigures: @escaping @Sendable () -> HealthFigures
    ) {
        self.store = store
        self.limits = limits
        self.version = version
        self.responseBudget = responseBudget
        self.startedAt = startedAtUptimeNanos
        self.healthFigures = healthFigures
    }

    public var uptimeMilliseconds: UInt64 { (monotonicNanos() &- startedAt) / 1_000_000 }

    public func handle(_ request: MethodRequest, context: CallContext) throws(MemoryError) -> MethodResponse {
        switch request {
        case .ping:
            return .ping(serverVersion: version, uptimeMs: uptimeMilliseconds)

        case .addMemoryItem(let item, let upsert, let rejectDuplicate):
            let item = try normalize(item, field: "item", context: context)
            // An empty text is nobody's duplicate (as in the original manager).
            if rejectDuplicate, !item.textContent.isEmpty, let hash = item.contentHash,
                let existing = try store.findByContentHash(userID: item.userID, contentHash: hash, context: context),
                existing != item.id
            {
                throw MemoryError(
                    .duplicate, "user \(Validation.show(item.userID)) already has this text as \(existing)",
                    details: ["existing_id": existing])
            }
            do {
                try store.addMemoryItem(item, upsert: upsert, context: context)
                onChange?(.stored([item]))
            } catch  where error.type == .duplicate && !upsert {
                // The same item sent again (a retry after a timeout, a re-import) is stored already: success.
                guard let stored = try storedUnchanged(item, context: context) else { throw error }
                onChange?(.stored([stored]))
            }
            return .addMemoryItem(id: item.id)

        case .addMemoryItems(let items, let upsert):
            guard items.count <= limits.maxBatchItems else {
                throw .validation("items has \(items.count) entries; the limit is \(limits.maxBatchItems) per call")
            }
            var results = [ItemResult](repeating: ItemResult(id: ""), count: items.count)
            var valid: [MemoryItem] = []
            var validIndex: [Int] = []
            var seen: [String: Int] = [:]
            for (i, raw) in items.enumerated() {
                do throws(MemoryError) {
                    let item = try normalize(raw, field: "items[\(i)]", context: context)
                    if let first = seen[item.id] {
                        throw MemoryError.duplicate("items[\(i)] repeats the id \(item.id) of items[\(first)]")
                    }
                    seen[item.id] = i
                    results[i].id = item.id
                    valid.append(item)
                    validIndex.append(i)
                } catch {
                    results[i] = ItemResult(id: raw.id, error: error)
                }
            }
            if !valid.isEmpty {
                let stored = try store.addMemoryItems(valid, upsert: upsert, context: context)
                var kept: [MemoryItem] = []
                for (k, err) in stored.enumerated() {
                    results[validIndex[k]].error = err
                    if err == nil {
                        kept.append(valid[k])
                    } else if err?.type == .duplicate, !upsert,
                        let same = try storedUnchanged(valid[k], context: context)
                    {
                        results[validIndex[k]] = ItemResult(id: same.id, unchanged: true)
                        kept.append(same)
                    }
                }
                if !kept.isEmpty { onChange?(.stored(kept)) }
            }
            return .addMemoryItems(results)

        case .getMemoryItem(let id):
            try Validation.checkID(id, field: "id", limits: limits)
            return .getMemoryItem(try store.getMemoryItem(id: id, context: context))

        case .deleteMemoryItem(let id):
            try Validation.checkID(id, field: "id", limits: limits)
            do {
                try store.deleteMemoryItem(id: id, context: context)
            } catch {
                if error.type == .notFound { onChange?(.deleted(id)) }
                throw error
            }
            onChange?(.deleted(id))
            return .deleteMemoryItem

        case .getConversationHistory(let r):
            let query = try historyQuery(r)
            let page = try boundedPage(
                limit: query.limit, cursor: query.cursor, size: responseBudget?.memoryItemBytes, what: "item"
            ) { (limit, cursor) throws(MemoryError) in
                var q = query
                q.limit = limit
                q.cursor = cursor
                return try store.conversationHistory(q, context: context)
            }
            return .getConversationHistory(page)

        case .semanticSearch(let r):
            let results = try store.semanticSearch(try searchQuery(r), context: context)
            try checkFits(results)
            return .semanticSearch(results)

        case .checkDuplicate(let raw):
            try Validation.checkKey(raw.userID, field: "item.user_id", required: true, limits: limits)
            try checkText(raw.textContent, field: "item.text_content")
            if raw.textContent.isEmpty { return .checkDuplicate(duplicate: false, existingID: "") }
            let hash = SHA256.hexDigest(raw.textContent)
            let existing = try store.findByContentHash(userID: raw.userID, contentHash: hash, context: context)
            return .checkDuplicate(duplicate: existing != nil, existingID: existing ?? "")

        case .addRawAgentData(let raw):
            let data = try normalize(raw, context: context)
            try store.addAgentData(data, context: context)
            return .addRawAgentData(id: data.id)

        case .getAgentData(let id):
            try Validation.checkID(id, field: "id", limits: limits)
            return .getAgentData(try store.getAgentData(id: id, context: context))

        case .listAgentData(let r):
            if r.allAgents {
                guard r.agentID.isEmpty else {
                    throw .validation(
                        "all_agents lists every agent's data; agent_id must then be empty, not \(Validation.show(r.agentID))"
                    )
                }
            } else {
                try Validation.checkKey(r.agentID, field: "agent_id (or all_agents)", required: true, limits: limits)
            }
            try Validation.checkKey(r.dataType, field: "data_type", required: false, limits: limits)
            let query = AgentDataQuery(
                agentID: r.agentID, dataType: r.dataType, limit: try limit(r.limit),
                cursor: try cursor(r.pageToken))
            let page = try boundedPage(
                limit: query.limit, cursor: query.cursor, size: responseBudget?.agentDataBytes, what: "agent data"
            ) { (limit, cursor) throws(MemoryError) in
                var q = query
                q.limit = limit
                q.cursor = cursor
                return try store.listAgentData(q, context: context)
            }
            return .listAgentData(page)

        case .listMemoryItems(let r):
            try Validation.checkKey(r.userID, field: "user_id", required: false, limits: limits)
            try Validation.checkKey(r.itemType, field: "item_type", required: false, limits: limits)
            let q = ListItemsQuery(
                userID: r.userID, itemType: r.itemType, limit: try limit(r.limit, default: 100),
                cursor: try cursor(r.pageToken), excludeEmbeddings: r.excludeEmbeddings)
            return .listMemoryItems(try store.listMemoryItems(q, context: context))

        case .cleanupExpiredItems:
            return .cleanupExpiredItems(deletedCount: try store.cleanupExpired(context: context))

        case .healthCheck:
            return .healthCheck(health(context: context))

        case .getMetrics:
            // The server answers it on its event loop, where the metrics are rendered; never queued here.
            throw .call(.unimplemented, "GetMetrics is answered by the server, not by a store")
        }
    }

    // MARK: - Answers that fit in a frame

    /// A listing page of at most `limit` items whose answer fits the ``responseBudget``: the store is read in
    /// parts (the first of ``ResponseBudget/firstRead`` items, the next ones sized by the room left and the
    /// largest item seen), and the page ends before the item that would not fit, with a token that resumes at
    /// it. So a page may hold fewer than `limit` items even when more follow; clients follow
    /// `next_page_token` until it is empty (PROTOCOL.md).
    private func boundedPage<T: Sendable & KeysetPaged>(
        limit: Int, cursor start: PageCursor?, size: (@Sendable (T) -> Int)?, what: String,
        read: (Int, PageCursor?) throws(MemoryError) -> Page<T>
    ) throws(MemoryError) -> Page<T> {
        guard let budget = responseBudget, let size else { return try read(limit, start) }
        var items: [T] = []
        var used = 0
        var largest = 0
        var cursor = start
        while true {
            let want = limit - items.count
            let n = largest == 0 ? min(want, budget.firstRead) : min(want, max(1, (budget.bytes - used) / largest))
            let part = try read(n, cursor)
            for item in part.items {
                let bytes = size(item)
                guard used + bytes <= budget.bytes else {
                    guard let last = items.last else {
                        throw .call(
                            .resourceExhausted,
                            "\(what) \(Validation.show(item.pageCursor.id)) alone takes \(bytes) bytes, over what max_frame_bytes leaves for an answer (\(budget.bytes))"
                        )
                    }
                    return Page(items: items, nextPageToken: last.pageCursor.token)
                }
                items.append(item)
                used += bytes
                largest = max(largest, bytes)
            }
            guard items.count < limit, !part.items.isEmpty, !part.nextPageToken.isEmpty else {
                return Page(items: items, nextPageToken: part.nextPageToken)
            }
            cursor = items[items.count - 1].pageCursor
        }
    }

    /// SemanticSearch has no pages: results that would not fit are refused before anything is encoded, saying
    /// how many would have.
    private func checkFits(_ results: [ScoredItem]) throws(MemoryError) {
        guard let budget = responseBudget else { return }
        var used = 0
        for (i, r) in results.enumerated() {
            used += budget.scoredItemBytes(r)
            if used > budget.bytes {
                throw .call(
                    .resourceExhausted,
                    "the \(results.count) results take more than max_frame_bytes leaves for an answer (\(budget.bytes) bytes); the best \(i) fit: ask for top_k ≤ \(i)"
                )
            }
        }
    }

    /// The stored item when `item` is the same item sent again — every field equal but the timestamp, which
    /// the server sets at receipt when the client leaves it out — else nil. This is what makes retrying an add
    /// by id safe on every backend (PROTOCOL.md, "Deadlines"): the retry of a write that did commit succeeds.
    private func storedUnchanged(_ item: MemoryItem, context: CallContext) throws(MemoryError) -> MemoryItem? {
        let stored: MemoryItem
        do {
            stored = try store.getMemoryItem(id: item.id, context: context)
        } catch  where error.type == .notFound {
            return nil
        }
        return item.isResent(as: stored) ? stored : nil
    }

    /// Never fails: a broken backend is reported as unhealthy.
    public func health(context: CallContext) -> HealthReport {
        let b = store.health(context: context)
        let figures = healthFigures()
        var details = figures.details
        for (k, v) in b.details { details[k] = v }
        details["backend"] = .string(figures.backend)
        details["version"] = .string(version)
        details["uptime_s"] = .number(Double(uptimeMilliseconds / 1000))
        var status = b.status
        var reason = b.reason
        if status == .healthy, let errors = details["error_count"]?.numberValue, errors >= 10 {
            status = .degraded
            reason = "\(Int(errors)) errors in the last minute"
        }
        if status != .healthy { details["reason"] = .string(reason) }
        return HealthReport(
            status: status.rawValue, firestore: figures.firestore && b.status != .unhealthy, details: details)
    }

    // MARK: - Normalization

    private func checkText(_ text: String, field: String) throws(MemoryError) {
        guard text.utf8.count <= limits.maxTextBytes else {
            throw .validation("\(field) is \(text.utf8.count) bytes; the limit is \(limits.maxTextBytes)")
        }
    }

    /// Validates an item and fills in the server's defaults: id, timestamp, item type, content hash.
    public func normalize(_ raw: MemoryItem, field: String, context: CallContext) throws(MemoryError) -> MemoryItem {
        var item = raw
        if item.id.isEmpty { item.id = IDGenerator.memoryItemID() }
        try Validation.checkID(item.id, field: "\(field).id", limits: limits)
        try Validation.checkKey(item.userID, field: "\(field).user_id", required: true, limits: limits)
        try Validation.checkKey(item.sessionID, field: "\(field).session_id", required: false, limits: limits)
        try Validation.checkKey(item.personaActive, field: "\(field).persona_active", required: false, limits: limits)
        try Validation.checkKey(item.itemType, field: "\(field).item_type", required: false, limits: limits)
        try checkText(item.textContent, field: "\(field).text_content")
        try Validation.checkEmbedding(item.embedding, field: "\(field).embedding", limits: limits, required: false)
        try Validation.checkMetadata(item.metadata, field: "\(field).metadata", limits: limits)
        try Validation.checkTimestamp(item.timestamp, field: "\(field).timestamp")
        try Validation.checkTimestamp(item.expiration, field: "\(field).expiration")
        if item.itemType.isEmpty { item.itemType = MemoryItem.defaultItemType }
        item.timestamp = (item.timestamp ?? context.now).truncatedToMicroseconds
        item.expiration = item.expiration?.truncatedToMicroseconds
        item.metadata["content_hash"] = .string(SHA256.hexDigest(item.textContent))
        let size = Validation.estimatedSize(item)
        guard size <= limits.maxItemBytes else {
            throw .validation("\(field) encodes to about \(size) bytes; the limit is \(limits.maxItemBytes)")
        }
        return item
    }

    public func normalize(_ raw: AgentData, context: CallContext) throws(MemoryError) -> AgentData {
        var data = raw
        if data.id.isEmpty { data.id = IDGenerator.agentDataID() }
        try Validation.checkID(data.id, field: "data.id", limits: limits)
        try Validation.checkKey(data.agentID, field: "data.agent_id", required: true, limits: limits)
        try Validation.checkKey(data.dataType, field: "data.data_type", required: true, limits: limits)
        try Validation.checkMetadata(data.metadata, field: "data.metadata", limits: limits)
        if let content = data.content {
            try Validation.checkMetadata(["content": content], field: "data", limits: limits)
            let size = content.serialized().utf8.count
            guard size <= limits.maxItemBytes else {
                throw .validation("data.content is \(size) bytes as JSON; the limit is \(limits.maxItemBytes)")
            }
        }
        try Validation.checkTimestamp(data.timestamp, field: "data.timestamp")
        try Validation.checkTimestamp(data.expiration, field: "data.expiration")
        data.timestamp = (data.timestamp ?? context.now).truncatedToMicroseconds
        data.expiration = data.expiration?.truncatedToMicroseconds
        return data
    }

    private func limit(_ raw: UInt32, default def: Int = 20) throws(MemoryError) -> Int {
        if raw == 0 { return def }
        guard raw <= limits.maxLimit else {
            throw .validation("limit \(raw) is over the maximum of \(limits.maxLimit)")
        }
        return Int(raw)
    }

    private func cursor(_ token: String) throws(MemoryError) -> PageCursor? {
        if token.isEmpty { return nil }
        guard let c = PageCursor(token: token) else {
            throw .validation("page_token \(Validation.show(token)) is not a token this server issued")
        }
        return c
    }

    /// Filter keys a history query accepts besides `metadata.KEY`.
    public static let filterableFields: Set<String> = [
        "id", "user_id", "session_id", "item_type", "persona_active", "text_content",
    ]

    public func historyQuery(_ r: HistoryRequest) throws(MemoryError) -> HistoryQuery {
        try Validation.checkKey(r.userID, field: "user_id", required: true, limits: limits)
        try Validation.checkKey(r.sessionID, field: "session_id", required: false, limits: limits)
        try Validation.checkKey(r.itemType, field: "item_type", required: false, limits: limits)
        for (key, value) in r.filters {
            if key.hasPrefix("metadata.") {
                guard key.count > "metadata.".count else {
                    throw .validation("filters key \(Validation.show(key)) names no metadata field")
                }
            } else if !Self.filterableFields.contains(key) {
                throw .validation(
                    "filters key \(Validation.show(key)) is not a field; use one of \(Self.filterableFields.sorted().joined(separator: ", ")) or metadata.KEY"
                )
            }
            switch value {
            case .string, .number, .bool, .null: break
            default: throw .validation("filters[\(Validation.show(key))] must be a string, number, bool or null")
            }
        }
        return HistoryQuery(
            userID: r.userID, sessionID: r.sessionID, limit: try limit(r.limit),
            itemType: r.itemType.isEmpty ? MemoryItem.defaultItemType : r.itemType,
            filters: r.filters, cursor: try cursor(r.pageToken), excludeEmbeddings: r.excludeEmbeddings)
    }

    public func searchQuery(_ r: SearchRequest) throws(MemoryError) -> SearchQuery {
        try Validation.checkKey(r.userID, field: "user_id", required: true, limits: limits)
        try Validation.checkKey(r.persona, field: "persona", required: false, limits: limits)
        try Validation.checkKey(r.sessionID, field: "session_id", required: false, limits: limits)
        try Validation.checkEmbedding(r.queryEmbedding, field: "query_embedding", limits: limits, required: true)
        guard let measure = DistanceMeasure(rawValue: r.measure) else {
            throw .validation("measure \(r.measure) is not COSINE (0), DOT_PRODUCT (1) or EUCLIDEAN (2)")
        }
        guard r.topK <= limits.maxTopK else {
            throw .validation("top_k \(r.topK) is over the maximum of \(limits.maxTopK)")
        }
        if let m = r.minScore, !m.isFinite { throw .validation("min_score is \(m); it must be finite") }
        return SearchQuery(
            userID: r.userID, embedding: r.queryEmbedding, persona: r.persona, sessionID: r.sessionID,
            topK: r.topK == 0 ? 5 : Int(r.topK), minScore: r.minScore, measure: measure,
            excludeEmbeddings: r.excludeEmbeddings)
    }
}

/// A change the store confirmed, as ``MemoryService/onChange`` reports it.
public enum StoreChange {
    /// Items as stored (normalized: id, timestamp and content hash set), one call's worth.
    case stored([MemoryItem])
    /// No item has this id any more.
    case deleted(String)
}
