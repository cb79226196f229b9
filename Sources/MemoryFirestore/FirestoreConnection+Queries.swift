import MemoryDomain
import MemoryUtilities

extension FirestoreConnection {
    func runQuery(_ body: JSONValue, context: CallContext) throws(MemoryError) -> [JSONValue] {
        switch try rest.call("runQuery", body: body, context: context) {
        case .ok(let json): return StructuredQuery.documents(json)
        case .failed(let status): throw status.error("firestore.runQuery")
        }
    }

    private static func isExpired(_ doc: JSONValue, _ now: Timestamp) -> Bool {
        DocumentMapping.expiration(of: doc).map { $0 <= now } ?? false
    }

    /// One page of a listing ordered by `timestamp` desc, `__name__` desc, without expired documents.
    ///
    /// Expired documents still stored (TTL deletes lazily) are skipped client-side; the loop keeps reading
    /// until it holds `limit + 1` live rows or the data ends, so expired rows never shorten a page, and the
    /// extra row tells whether there is a next page.
    func livePage(
        collection: String, filters: [JSONValue], limit: Int, cursor: PageCursor?,
        context: CallContext
    ) throws(MemoryError) -> (docs: [JSONValue], next: PageCursor?) {
        let order = [
            StructuredQuery.order("timestamp", descending: true), StructuredQuery.order("__name__", descending: true),
        ]
        var startAfter: [JSONValue]? = cursor.map {
            [
                FirestoreValue.timestamp($0.timestamp),
                FirestoreValue.reference(shared.documentName(collection: collection, id: $0.id)),
            ]
        }
        let want = limit + 1
        var live: [JSONValue] = []
        var round = 0
        while live.count < want {
            // First round: exactly what is needed; later rounds (expired rows met) read ahead more.
            let fetch = min(1000, round == 0 ? want : max(want - live.count, 50 << min(round, 4)))
            let docs = try runQuery(
                StructuredQuery.query(
                    collection: collection, filters: filters, orderBy: order,
                    startAfter: startAfter, limit: fetch), context: context)
            live += docs.filter { !Self.isExpired($0, context.now) }
            guard docs.count == fetch, let last = docs.last, let name = last["name"]?.stringValue,
                let ts = last["fields"]?["timestamp"]
            else { break }
            startAfter = [ts, FirestoreValue.reference(name)]
            round += 1
        }
        let page = Array(live.prefix(limit))
        var next: PageCursor?
        if live.count > limit, let last = page.last, let name = last["name"]?.stringValue,
            let ts = FirestoreValue.readTimestamp(last["fields"]?["timestamp"])
        {
            next = PageCursor(timestamp: ts, id: DocumentMapping.documentID(name))
        }
        return (page, next)
    }

    func conversationHistory(_ query: HistoryQuery, context: CallContext) throws(MemoryError) -> Page<MemoryItem> {
        var filters = [
            StructuredQuery.equal("user_id", .string(query.userID)),
            StructuredQuery.equal("item_type", .string(query.itemType)),
        ]
        if !query.sessionID.isEmpty { filters.append(StructuredQuery.equal("session_id", .string(query.sessionID))) }
        for (key, value) in query.filters.sorted(by: { $0.key < $1.key }) {
            let path: String
            if key.hasPrefix("metadata.") {
                path = DocumentMapping.fieldPath(["metadata", String(key.dropFirst("metadata.".count))])
            } else {
                path = DocumentMapping.fieldPath([key])
            }
            filters.append(StructuredQuery.equal(path, value))
        }
        let (docs, next) = try livePage(
            collection: config.memoryCollection, filters: filters, limit: query.limit,
            cursor: query.cursor, context: context)
        return Page(items: docs.map(DocumentMapping.item(from:)), nextPageToken: next?.token ?? "")
    }

    func listAgentData(_ query: AgentDataQuery, context: CallContext) throws(MemoryError) -> Page<AgentData> {
        var filters = [StructuredQuery.equal("agent_id", .string(query.agentID))]
        if !query.dataType.isEmpty { filters.append(StructuredQuery.equal("data_type", .string(query.dataType))) }
        let (docs, next) = try livePage(
            collection: config.agentCollection, filters: filters, limit: query.limit,
            cursor: query.cursor, context: context)
        return Page(items: docs.map(DocumentMapping.agentData(from:)), nextPageToken: next?.token ?? "")
    }

    /// Firestore's own nearest-neighbour search (`findNearest`, exact with a flat index), prefiltered by user
    /// (and persona, session). Expired rows take slots in Firestore's top-k, so the limit is over-fetched and
    /// raised (up to Firestore's 1000) until `top_k` live rows are found or the candidates run out.
    func semanticSearch(_ query: SearchQuery, context: CallContext) throws(MemoryError) -> [ScoredItem] {
        var filters = [StructuredQuery.equal("user_id", .string(query.userID))]
        if !query.persona.isEmpty { filters.append(StructuredQuery.equal("persona_active", .string(query.persona))) }
        if !query.sessionID.isEmpty { filters.append(StructuredQuery.equal("session_id", .string(query.sessionID))) }
        var threshold: Double?
        if let minScore = query.minScore {
            guard let t = VectorScore.threshold(minScore: minScore, measure: query.measure) else { return [] }
            threshold = t
        }
        var limit = min(1000, query.topK + max(8, query.topK / 4))
        var results: [ScoredItem] = []
        while true {
            let body = StructuredQuery.nearest(
                collection: config.memoryCollection, filters: filters, vector: query.embedding,
                measure: query.measure, limit: limit, distanceThreshold: threshold)
            let docs = try runQuery(body, context: context)
            results = []
            for doc in docs where !Self.isExpired(doc, context.now) {
                guard
                    let d = doc["fields"]?[DocumentMapping.distanceField].flatMap({ v in
                        v["doubleValue"].flatMap(FirestoreValue.double)
                            ?? v["integerValue"]?.stringValue.flatMap(Double.init)
                    })
                else { continue }
                let score = VectorScore.score(distance: d, measure: query.measure)
                if let minScore = query.minScore, score < minScore { continue }
                results.append(ScoredItem(item: DocumentMapping.item(from: doc), score: score))
            }
            if results.count >= query.topK || docs.count < limit || limit >= 1000 { break }
            limit = min(1000, limit * 4)
        }
        results.sort { $0.score != $1.score ? $0.score > $1.score : $0.item.id < $1.item.id }
        return Array(results.prefix(query.topK))
    }

    func findByContentHash(userID: String, contentHash: String, context: CallContext) throws(MemoryError) -> String? {
        let filters = [
            StructuredQuery.equal("user_id", .string(userID)),
            StructuredQuery.equal("metadata.content_hash", .string(contentHash)),
        ]
        var startAfter: [JSONValue]?
        let fetch = 20
        while true {
            let docs = try runQuery(
                StructuredQuery.query(
                    collection: config.memoryCollection, filters: filters,
                    orderBy: [StructuredQuery.order("__name__", descending: false)],
                    startAfter: startAfter, limit: fetch), context: context)
            if let live = docs.first(where: { !Self.isExpired($0, context.now) }) {
                return DocumentMapping.item(from: live).id
            }
            guard docs.count == fetch, let name = docs.last?["name"]?.stringValue else { return nil }
            startAfter = [FirestoreValue.reference(name)]
        }
    }

    // MARK: - Batches

    /// Items go out with `documents:batchWrite`, not `commit`: a commit is atomic, so one existing id would
    /// fail the whole batch, while AddMemoryItems promises a result per item. batchWrite applies each write
    /// independently and answers one status per write. Requests hold at most `batchSize` writes and stay
    /// under 9 MiB (Firestore refuses requests over 10 MiB).
    func addMemoryItems(_ items: [MemoryItem], upsert: Bool, context: CallContext) throws(MemoryError) -> [MemoryError?]
    {
        var results = [MemoryError?](repeating: nil, count: items.count)
        let writes = items.map { item in
            Self.updateWrite(
                name: itemName(item.id), fields: DocumentMapping.fields(of: item),
                precondition: upsert ? nil : Self.mustNotExist)
        }
        for chunk in chunks(writes) {
            let (statuses, retried) = try batchWrite(chunk.map { writes[$0] }, context: context)
            var conflicts: [Int] = []
            for (k, status) in statuses.enumerated() {
                let i = chunk[k]
                guard let status else { continue }
                if status.status == "ALREADY_EXISTS" || (status.status == "FAILED_PRECONDITION" && !upsert) {
                    conflicts.append(i)
                } else {
                    results[i] = status.error("firestore.batchWrite")
                }
            }
            // An existing id is a duplicate unless it expired (free again) or holds exactly this item (our own
            // write from an attempt that was retried): settle those one by one.
            if conflicts.isEmpty { continue }
            let existing = try fetchMany(
                conflicts.map { itemName(items[$0].id) }, operation: "firestore.batchGet", context: context)
            for i in conflicts {
                let stored = (existing[itemName(items[i].id)] ?? nil).map(DocumentMapping.item(from:))
                if retried, stored == items[i] { continue }
                if let stored, !stored.isExpired(at: context.now) {
                    results[i] = MemoryError(
                        .duplicate, "memory item id \(Validation.show(items[i].id)) already exists",
                        operation: "firestore.batchWrite")
                    continue
                }
                do throws(MemoryError) {
                    try addMemoryItem(items[i], upsert: false, context: context)
                } catch {
                    results[i] = error
                }
            }
        }
        return results
    }

    /// Index lists of `writes`, each at most `batchSize` long and under the request size cap.
    func chunks(_ writes: [JSONValue]) -> [[Int]] {
        let maxBytes = 9 * 1024 * 1024
        var out: [[Int]] = []
        var current: [Int] = []
        var bytes = 0
        for (i, w) in writes.enumerated() {
            let size = w.serialized().utf8.count + 1
            if !current.isEmpty && (current.count >= max(1, config.batchSize) || bytes + size > maxBytes) {
                out.append(current)
                current = []
                bytes = 0
            }
            current.append(i)
            bytes += size
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// `documents:batchWrite`: one status per write (nil = applied). Writes answered with a transient status
    /// are sent again, with backoff, within the retry budget and the deadline.
    /// `retried` tells that some write was sent more than once (so it may have been applied before).
    func batchWrite(_ writes: [JSONValue], context: CallContext) throws(MemoryError) -> (
        statuses: [FirestoreStatus?], retried: Bool
    ) {
        var statuses = [FirestoreStatus?](repeating: nil, count: writes.count)
        var retried = false
        var pending = Array(writes.indices)
        let policy = RetryPolicy(maxRetries: max(0, config.maxRetries))
        var attempt = 0
        while !pending.isEmpty {
            let body = JSONValue.object(["writes": .array(pending.map { writes[$0] })])
            let json: JSONValue
            switch try rest.call("batchWrite", body: body, context: context) {
            case .ok(let j): json = j
            case .failed(let status): throw status.error("firestore.batchWrite")
            }
            retried = retried || rest.lastCallRetried || attempt > 0
            let answers = json["status"]?.arrayValue ?? []
            var again: [Int] = []
            for (k, i) in pending.enumerated() {
                let s = k < answers.count ? answers[k] : .object([:])
                let code = Int(s["code"]?.numberValue ?? 0)
                if code == 0 {
                    statuses[i] = nil
                    continue
                }
                let status = FirestoreStatus(rpcCode: code, message: s["message"]?.stringValue ?? "")
                statuses[i] = status
                if status.isRetryable { again.append(i) }
            }
            let delay = policy.delayMs(attempt: attempt)
            guard !again.isEmpty, attempt < policy.maxRetries, Double(context.deadline.remainingMilliseconds) > delay
            else { break }
            shared.retries.add(1, ordering: .relaxed)
            sleepMilliseconds(delay)
            attempt += 1
            pending = again
        }
        return (statuses, retried)
    }

    // MARK: - Cleanup

    /// Deletes expired documents of both collections, `batchSize` per request, and returns how many.
    /// Each delete carries the `updateTime` the query saw, so an item re-written meanwhile survives.
    func cleanupExpired(context: CallContext) throws(MemoryError) -> UInt64 {
        var deleted: UInt64 = 0
        for collection in [config.memoryCollection, config.agentCollection] {
            let filters = [
                StructuredQuery.compare("expiration", "LESS_THAN_OR_EQUAL", FirestoreValue.timestamp(context.now))
            ]
            let limit = max(1, min(config.batchSize, 1000))
            while true {
                let docs = try runQuery(
                    StructuredQuery.query(
                        collection: collection, filters: filters, limit: limit,
                        selectNameOnly: true), context: context)
                let writes: [JSONValue] = docs.compactMap { doc in
                    guard let name = doc["name"]?.stringValue else { return nil }
                    var w: [String: JSONValue] = ["delete": .string(name)]
                    if let unchanged = Self.unchangedSince(doc) { w["currentDocument"] = unchanged }
                    return .object(w)
                }
                if writes.isEmpty { break }
                let (statuses, _) = try batchWrite(writes, context: context)
                let done = statuses.filter { $0 == nil }.count
                deleted += UInt64(done)
                // Stop when the data ends, or when nothing could be deleted (so a stuck row cannot spin us).
                if docs.count < limit || done == 0 { break }
            }
        }
        return deleted
    }
}
