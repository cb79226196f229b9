import CFirestoreProto
import MemoryDomain
import MemoryUtilities

/// A row of a listing: the decoded value and what paging needs to know about its document.
struct ListedRow<T> {
    var value: T?
    /// Why the document cannot be read (DocumentChecks); then `value` is nil.
    var problem: String?
    var expired: Bool
    var timestamp: Timestamp?
    var name: String

    var id: String { name.lastIndex(of: "/").map { String(name[name.index(after: $0)...]) } ?? name }
}

extension FirestoreConnection {
    typealias Filters = (ProtoArena) -> [UnsafeMutablePointer<FSFilter>]

    /// One page of a listing ordered by `timestamp` then `__name__` (descending, or ascending for exports),
    /// without expired documents.
    ///
    /// Expired documents still stored (TTL deletes lazily) are skipped client-side; the loop keeps reading
    /// until it holds `limit + 1` live rows or the data ends, so expired rows never shorten a page, and the
    /// extra row tells whether there is a next page. Malformed documents (`check` names their problem) are
    /// left out too, logged, and their ids returned once: with the page whose range holds them.
    func livePage<T>(
        collection: String, filters: Filters, descending: Bool = true, limit: Int, cursor: PageCursor?,
        select: [String]? = nil, context: CallContext, check: (UnsafePointer<FSDocument>) -> String?,
        decode: (UnsafePointer<FSDocument>) -> T
    ) throws(MemoryError) -> (rows: [T], next: PageCursor?, skipped: [String]) {
        var after: (Timestamp, String)? = cursor.map {
            ($0.timestamp, shared.documentName(collection: collection, id: $0.id))
        }
        let want = limit + 1
        var live: [ListedRow<T>] = []
        var bad: [(afterLive: Int, row: ListedRow<T>)] = []
        var round = 0
        while live.count < want {
            // First round: exactly what is needed; later rounds (expired rows met) read ahead more.
            let fetch = min(1000, round == 0 ? want : max(want - live.count, 50 << min(round, 4)))
            let start = after
            let rows = try runQuery(
                { a in
                    a.query(
                        collection: collection, filters: filters(a),
                        orderBy: [
                            a.order("timestamp", descending: descending), a.order("__name__", descending: descending),
                        ],
                        startAfter: start.map { [a.timestampValue($0.0), a.referenceValue($0.1)] }, limit: fetch,
                        select: select)
                }, context: context
            ) { doc in
                let problem = check(doc)
                return ListedRow(
                    value: problem == nil ? decode(doc) : nil, problem: problem,
                    expired: DocumentDecoding.isExpired(doc, at: context.now),
                    timestamp: DocumentDecoding.storedTimestamp(doc), name: DocumentDecoding.name(doc))
            }
            for row in rows {
                if row.problem != nil {
                    bad.append((live.count, row))
                } else if !row.expired {
                    live.append(row)
                }
            }
            guard rows.count == fetch, let last = rows.last, let ts = last.timestamp else { break }
            after = (ts, last.name)
            round += 1
        }
        let page = Array(live.prefix(limit))
        var next: PageCursor?
        if live.count > limit, let last = page.last, let ts = last.timestamp {
            next = PageCursor(timestamp: ts, id: last.id)
        }
        // A malformed row read ahead past this page's last row belongs to the next page's range.
        let skipped = bad.filter { next == nil || $0.afterLive < limit }.map(\.row)
        for row in skipped { reportSkipped(collection: collection, id: row.id, problem: row.problem ?? "") }
        return (page.compactMap(\.value), next, skipped.map(\.id))
    }

    func conversationHistory(_ query: HistoryQuery, context: CallContext) throws(MemoryError) -> Page<MemoryItem> {
        let filters: Filters = { a in
            var f = [a.equal("user_id", .string(query.userID)), a.equal("item_type", .string(query.itemType))]
            if !query.sessionID.isEmpty { f.append(a.equal("session_id", .string(query.sessionID))) }
            for (key, value) in query.filters.sorted(by: { $0.key < $1.key }) {
                let path =
                    key.hasPrefix("metadata.")
                    ? FieldPath.of(["metadata", String(key.dropFirst("metadata.".count))]) : FieldPath.of([key])
                f.append(a.equal(path, value))
            }
            return f
        }
        let (items, next, skipped) = try livePage(
            collection: config.memoryCollection, filters: filters, limit: query.limit, cursor: query.cursor,
            select: query.excludeEmbeddings ? FieldPath.itemWithoutEmbedding : nil, context: context,
            check: DocumentChecks.itemProblem
        ) { DocumentDecoding.item($0) }
        return Page(items: items, nextPageToken: next?.token ?? "", skippedIDs: skipped)
    }

    func listAgentData(_ query: AgentDataQuery, context: CallContext) throws(MemoryError) -> Page<AgentData> {
        let filters: Filters = { a in
            var f: [UnsafeMutablePointer<FSFilter>] = []
            if !query.agentID.isEmpty { f.append(a.equal("agent_id", .string(query.agentID))) }
            if !query.dataType.isEmpty { f.append(a.equal("data_type", .string(query.dataType))) }
            return f
        }
        let (items, next, skipped) = try livePage(
            collection: config.agentCollection, filters: filters, limit: query.limit, cursor: query.cursor,
            context: context, check: DocumentChecks.agentDataProblem, decode: DocumentDecoding.agentData)
        return Page(items: items, nextPageToken: next?.token ?? "", skippedIDs: skipped)
    }

    /// Every item (of one user / one type), oldest first: an ordered query over the collection with keyset
    /// cursors. Documents without a `timestamp` field cannot be ordered by it and are not listed.
    func listMemoryItems(_ query: ListItemsQuery, context: CallContext) throws(MemoryError) -> Page<MemoryItem> {
        let filters: Filters = { a in
            var f: [UnsafeMutablePointer<FSFilter>] = []
            if !query.userID.isEmpty { f.append(a.equal("user_id", .string(query.userID))) }
            if !query.itemType.isEmpty { f.append(a.equal("item_type", .string(query.itemType))) }
            return f
        }
        let (items, next, skipped) = try livePage(
            collection: config.memoryCollection, filters: filters, descending: false, limit: query.limit,
            cursor: query.cursor, select: query.excludeEmbeddings ? FieldPath.itemWithoutEmbedding : nil,
            context: context, check: DocumentChecks.itemProblem
        ) { DocumentDecoding.item($0) }
        return Page(items: items, nextPageToken: next?.token ?? "", skippedIDs: skipped)
    }

    /// Firestore's own nearest-neighbour search (`find_nearest`, exact with a flat index), prefiltered by user
    /// (and persona, session), asking for exactly `top_k` documents. Expired rows still stored take slots in
    /// Firestore's top-k; only when they did is the query asked again with a limit raised by the slots they
    /// took (then doubled, up to Firestore's 1000), until `top_k` live rows are found or the candidates run out.
    func semanticSearch(_ query: SearchQuery, context: CallContext) throws(MemoryError) -> [ScoredItem] {
        var threshold: Double?
        if let minScore = query.minScore {
            guard let t = VectorScore.threshold(minScore: minScore, measure: query.measure) else { return [] }
            threshold = t
        }
        let select = query.excludeEmbeddings ? FieldPath.itemWithoutEmbedding + [DocumentDecoding.distanceField] : nil
        var limit = min(1000, max(1, query.topK))
        var results: [ScoredItem] = []
        lastSearchLimits = []
        for round in 0... {
            lastSearchLimits.append(limit)
            let fetchLimit = limit
            let rows = try runQuery(
                { a in
                    var f = [a.equal("user_id", .string(query.userID))]
                    if !query.persona.isEmpty { f.append(a.equal("persona_active", .string(query.persona))) }
                    if !query.sessionID.isEmpty { f.append(a.equal("session_id", .string(query.sessionID))) }
                    return a.nearest(
                        collection: config.memoryCollection, filters: f, vector: query.embedding,
                        measure: query.measure, limit: fetchLimit, distanceThreshold: threshold, select: select)
                }, context: context
            ) { doc -> (item: MemoryItem, distance: Double, problem: String?) in
                var distance = Double.nan
                let item = DocumentDecoding.item(doc, distance: &distance)
                return (item, distance, DocumentChecks.itemProblem(doc))
            }
            results = []
            var expired = 0
            for row in rows {
                if let problem = row.problem {
                    if round == 0 {
                        reportSkipped(collection: config.memoryCollection, id: row.item.id, problem: problem)
                    }
                    expired += 1  // it took a slot, like an expired row
                    continue
                }
                if row.item.isExpired(at: context.now) {
                    expired += 1
                    continue
                }
                guard !row.distance.isNaN else { continue }
                let score = VectorScore.score(distance: row.distance, measure: query.measure)
                if let minScore = query.minScore, score < minScore { continue }
                results.append(ScoredItem(item: row.item, score: score))
            }
            if results.count >= query.topK || rows.count < limit || limit >= 1000 || expired == 0 { break }
            // Expired rows took `expired` of the slots: ask for that many more (then, if expired rows keep
            // coming, double), so a few stale rows cost one more small query, not a large over-fetch every time.
            limit = min(1000, round == 0 ? query.topK + expired : max(query.topK + expired, limit * 2))
        }
        results.sort { $0.score != $1.score ? $0.score > $1.score : $0.item.id < $1.item.id }
        return Array(results.prefix(query.topK))
    }

    func findByContentHash(userID: String, contentHash: String, context: CallContext) throws(MemoryError) -> String? {
        var after: String?
        let fetch = 20
        while true {
            let start = after
            let rows = try runQuery(
                { a in
                    a.query(
                        collection: config.memoryCollection,
                        filters: [
                            a.equal("user_id", .string(userID)), a.equal("metadata.content_hash", .string(contentHash)),
                        ],
                        orderBy: [a.order("__name__", descending: false)],
                        startAfter: start.map { [a.referenceValue($0)] }, limit: fetch, select: ["id", "expiration"])
                }, context: context
            ) { doc in
                (
                    id: DocumentDecoding.item(doc).id, expired: DocumentDecoding.isExpired(doc, at: context.now),
                    name: DocumentDecoding.name(doc)
                )
            }
            if let live = rows.first(where: { !$0.expired }) { return live.id }
            guard rows.count == fetch, let last = rows.last else { return nil }
            after = last.name
        }
    }
}
