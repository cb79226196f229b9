import CFirestoreProto
import MemoryDomain
import MemoryUtilities

extension FirestoreConnection {
    /// Items go out with BatchWrite, not Commit: a commit is atomic, so one existing id would fail the whole
    /// batch, while AddMemoryItems promises a result per item. BatchWrite applies each write independently
    /// and answers one status per write. Requests hold at most `batchSize` writes and stay under 9 MiB
    /// (Firestore refuses requests over 10 MiB).
    func addMemoryItems(_ items: [MemoryItem], upsert: Bool, context: CallContext) throws(MemoryError) -> [MemoryError?]
    {
        var results = [MemoryError?](repeating: nil, count: items.count)
        let operation = FirestoreMethod.batchWrite.operation
        for chunk in chunks(sizes: items.map(Self.estimatedWriteBytes)) {
            let (statuses, retried) = try batchWrite(count: chunk.count, context: context) { a, k in
                let item = items[chunk[k]]
                let name = itemName(item.id)
                return a.updateWrite(a.document(item, name: name), upsert ? .none : .mustNotExist)
            }
            var conflicts: [Int] = []
            for (k, status) in statuses.enumerated() {
                let i = chunk[k]
                guard let status else { continue }
                if status.code == .alreadyExists || (status.code == .failedPrecondition && !upsert) {
                    conflicts.append(i)
                } else {
                    results[i] = status.error(operation)
                }
            }
            // An existing id is a duplicate unless it expired (free again) or holds exactly this item (our own
            // write from an attempt that was retried): settle those one by one.
            if conflicts.isEmpty { continue }
            let existing = try fetch(conflicts.map { itemName(items[$0].id) }, context: context) {
                DocumentDecoding.item($0)
            }
            for i in conflicts {
                let stored = existing[itemName(items[i].id)]
                if retried, stored == items[i] { continue }
                if let stored, !stored.isExpired(at: context.now) {
                    results[i] = MemoryError(
                        .duplicate, "memory item id \(Validation.show(items[i].id)) already exists",
                        operation: operation)
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

    /// About what one item's write takes on the wire: a vector element is a Value of ~11 bytes.
    static func estimatedWriteBytes(_ item: MemoryItem) -> Int {
        Validation.estimatedSize(item) + item.embedding.count * 8 + 512
    }

    /// Index lists over `sizes.count` writes, each at most `batchSize` long and under the request size cap.
    func chunks(sizes: [Int]) -> [[Int]] {
        let maxBytes = 9 * 1024 * 1024
        var out: [[Int]] = []
        var current: [Int] = []
        var bytes = 0
        for (i, size) in sizes.enumerated() {
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

    /// BatchWrite of `count` writes built by `write(arena, k)`: one status per write (nil = applied). Writes
    /// answered with a transient status are sent again, with backoff, within the retry budget and the deadline.
    /// `retried` tells that some write was sent more than once (so it may have been applied before).
    func batchWrite(
        count: Int, context: CallContext, write: (ProtoArena, Int) -> UnsafeMutablePointer<FSWrite>
    ) throws(MemoryError) -> (statuses: [FirestoreStatus?], retried: Bool) {
        var statuses = [FirestoreStatus?](repeating: nil, count: count)
        var retried = false
        var pending = Array(0..<count)
        let policy = RetryPolicy(maxRetries: max(0, config.maxRetries))
        var attempt = 0
        while !pending.isEmpty {
            let arena = ProtoArena()
            let request = arena.batchWriteRequest(
                database: config.databasePath, writes: pending.map { write(arena, $0) })
            var perWrite: [FirestoreStatus?] = []
            let status = try rpc.call(.batchWrite, request: request, context: context, onAttempt: { perWrite = [] }) {
                (bytes) throws(MemoryError) in
                defer { answers.reset() }
                let m = try answers.unpack(
                    bytes, google__firestore__v1__batch_write_response__unpack, what: "BatchWriteResponse")
                for i in 0..<m.pointee.n_status {
                    guard let s = m.pointee.status[i], s.pointee.code != 0 else {
                        perWrite.append(nil)
                        continue
                    }
                    perWrite.append(
                        FirestoreStatus(
                            rawCode: s.pointee.code, message: s.pointee.message.map { String(cString: $0) } ?? ""))
                }
            }
            if let status { throw status.error(FirestoreMethod.batchWrite.operation) }
            retried = retried || rpc.lastCallRetried || attempt > 0
            var again: [Int] = []
            for (k, i) in pending.enumerated() {
                let s = k < perWrite.count ? perWrite[k] : nil
                statuses[i] = s
                if let s, s.isRetryable { again.append(i) }
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
    /// Each delete carries the `update_time` the query saw, so an item re-written meanwhile survives.
    func cleanupExpired(context: CallContext) throws(MemoryError) -> UInt64 {
        var deleted: UInt64 = 0
        for collection in [config.memoryCollection, config.agentCollection] {
            let limit = max(1, min(config.batchSize, 1000))
            while true {
                let rows = try runQuery(
                    { a in
                        a.query(
                            collection: collection,
                            filters: [
                                a.compare(
                                    "expiration",
                                    GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FIELD_FILTER__OPERATOR__LESS_THAN_OR_EQUAL,
                                    a.timestampValue(context.now))
                            ], limit: limit, select: ["__name__"])
                    }, context: context
                ) { doc in (name: DocumentDecoding.name(doc), version: DocumentDecoding.version(doc)) }
                if rows.isEmpty { break }
                let (statuses, _) = try batchWrite(count: rows.count, context: context) { a, k in
                    a.deleteWrite(name: rows[k].name, rows[k].version.map { .unchangedSince($0) } ?? .none)
                }
                let done = statuses.filter { $0 == nil }.count
                deleted += UInt64(done)
                // Stop when the data ends, or when nothing could be deleted (so a stuck row cannot spin us).
                if rows.count < limit || done == 0 { break }
            }
        }
        return deleted
    }
}
