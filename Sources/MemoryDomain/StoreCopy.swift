import Logging
import MemoryUtilities

/// Copies one namespace from one store to another — `memoryd migrate --from sqlite --to firestore` (outgrowing
/// one machine) and `--from firestore --to sqlite` (the way back) — through the store interface only, so it
/// works between any two backends.
///
/// Every memory item (any user, any type, oldest first) and every agent data record the source shows is
/// copied with its id, timestamp, expiration, embedding and metadata. An item already in the target and equal
/// is skipped (counted as current), so a rerun copies nothing and an interrupted run resumes; one that is in
/// the target but differs is not overwritten (counted as failed, named in a warning). At the end the target
/// is read back: every source record must be there and equal, and the content checksums of both sides must
/// match.
///
/// Expired records are invisible to reads and so are not copied. Expiration is judged at one instant, the
/// copy's start, on both sides.
public final class StoreCopy {
    public let source: StoreConnection
    public let target: StoreConnection
    public let logger: Logger
    /// Records per page read and per AddMemoryItems call.
    public var pageSize = 500
    public var dryRun = false
    /// Items whose embedding has another length are not copied (the target's search could not use them).
    public var embeddingDimension: Int?
    /// A call's deadline (each page is a call).
    public var callTimeoutMs: UInt64 = 120_000
    private let now = Timestamp.now().truncatedToMicroseconds

    /// What the final read-back found.
    public struct Verification: Sendable {
        /// Records the source showed, and how many of them the target holds, equal.
        public var sourceCount = 0
        public var matching = 0
        /// Records the target holds that the source does not (copied from elsewhere; not an error).
        public var extraInTarget = 0
        /// SHA-256 over the sorted (id, content digest) pairs of the source's records, and over the same ids
        /// as the target holds them: equal when the copy is complete.
        public var sourceChecksum = ""
        public var targetChecksum = ""
        /// Source ids the target lacks or holds different.
        public var mismatched: [String] = []

        public var isComplete: Bool { mismatched.isEmpty && sourceChecksum == targetChecksum }
    }

    public init(source: StoreConnection, target: StoreConnection, logger: Logger) {
        self.source = source
        self.target = target
        self.logger = logger
    }

    private func context() -> CallContext { CallContext(deadline: .after(milliseconds: callTimeoutMs), now: now) }

    /// Copies, then (unless `dryRun`) verifies.
    public func run(progress: (MigrationSummary) -> Void) throws(MemoryError) -> (MigrationSummary, Verification?) {
        var summary = MigrationSummary()
        var failedIDs = Set<String>()
        let (targetItems, targetData) = try indexTarget()

        // Memory items, oldest first.
        var sourceDigests: [String: UInt64] = [:]
        var cursor: PageCursor?
        repeat {
            let page = try source.listMemoryItems(
                ListItemsQuery(limit: pageSize, cursor: cursor), context: context())
            summary.scanned += page.items.count + page.skippedIDs.count
            for id in page.skippedIDs { fail(id, "it cannot be read in the source (malformed)", &summary, &failedIDs) }
            var toWrite: [MemoryItem] = []
            for raw in page.items {
                guard let item = Self.normalized(raw) else {
                    fail(raw.id, "it has no timestamp", &summary, &failedIDs)
                    continue
                }
                if let d = embeddingDimension, !item.embedding.isEmpty, item.embedding.count != d {
                    fail(
                        item.id, "its embedding has \(item.embedding.count) values; embedding_dimension is \(d)",
                        &summary, &failedIDs)
                    continue
                }
                let digest = Self.digest(item)
                sourceDigests[item.id] = digest
                switch targetItems[item.id] {
                case digest: summary.current += 1
                case nil: toWrite.append(item)
                default:
                    fail(
                        item.id, "the target holds a different item with this id; not overwritten", &summary, &failedIDs
                    )
                }
            }
            if dryRun {
                summary.converted += toWrite.count
            } else if !toWrite.isEmpty {
                let results = try target.addMemoryItems(toWrite, upsert: false, context: context())
                for (item, error) in zip(toWrite, results) {
                    if let error {
                        fail(item.id, "the target refused it: \(error.message)", &summary, &failedIDs)
                    } else {
                        summary.converted += 1
                    }
                }
            }
            progress(summary)
            cursor = PageCursor(token: page.nextPageToken)
        } while cursor != nil

        // Agent data, every agent's, newest first.
        var sourceDataDigests: [String: UInt64] = [:]
        cursor = nil
        repeat {
            let page = try source.listAgentData(
                AgentDataQuery(agentID: "", limit: pageSize, cursor: cursor), context: context())
            summary.scanned += page.items.count + page.skippedIDs.count
            for id in page.skippedIDs { fail(id, "it cannot be read in the source (malformed)", &summary, &failedIDs) }
            for data in page.items {
                guard data.timestamp != nil else {
                    fail(data.id, "it has no timestamp", &summary, &failedIDs)
                    continue
                }
                let digest = Self.digest(data)
                sourceDataDigests[data.id] = digest
                switch targetData[data.id] {
                case digest:
                    summary.current += 1
                case nil:
                    if dryRun {
                        summary.converted += 1
                        continue
                    }
                    do throws(MemoryError) {
                        try target.addAgentData(data, context: context())
                        summary.converted += 1
                    } catch {
                        fail(data.id, "the target refused it: \(error.message)", &summary, &failedIDs)
                    }
                default:
                    fail(
                        data.id, "the target holds different agent data with this id; not overwritten", &summary,
                        &failedIDs)
                }
            }
            progress(summary)
            cursor = PageCursor(token: page.nextPageToken)
        } while cursor != nil

        if dryRun { return (summary, nil) }
        let verification = try verify(items: sourceDigests, data: sourceDataDigests)
        for id in verification.mismatched where !failedIDs.contains(id) {
            fail(id, "the target does not hold it equal after the copy", &summary, &failedIDs)
        }
        return (summary, verification)
    }

    private func fail(_ id: String, _ why: String, _ summary: inout MigrationSummary, _ failedIDs: inout Set<String>) {
        summary.failed += 1
        failedIDs.insert(id)
        logger.warning("cannot copy \(id): \(why)", metadata: ["id": .string(id)])
    }

    /// Content digests of everything the target shows, by id.
    private func indexTarget() throws(MemoryError) -> (items: [String: UInt64], data: [String: UInt64]) {
        var items: [String: UInt64] = [:]
        var cursor: PageCursor?
        repeat {
            let page = try target.listMemoryItems(ListItemsQuery(limit: pageSize, cursor: cursor), context: context())
            for item in page.items { items[item.id] = Self.digest(item) }
            cursor = PageCursor(token: page.nextPageToken)
        } while cursor != nil
        var data: [String: UInt64] = [:]
        repeat {
            let page = try target.listAgentData(
                AgentDataQuery(agentID: "", limit: pageSize, cursor: cursor), context: context())
            for d in page.items { data[d.id] = Self.digest(d) }
            cursor = PageCursor(token: page.nextPageToken)
        } while cursor != nil
        return (items, data)
    }

    /// Reads the target back and compares it with what the source showed.
    private func verify(items: [String: UInt64], data: [String: UInt64]) throws(MemoryError) -> Verification {
        let (targetItems, targetData) = try indexTarget()
        var v = Verification()
        v.sourceCount = items.count + data.count
        for (source, target) in [(items, targetItems), (data, targetData)] {
            for (id, digest) in source {
                if target[id] == digest { v.matching += 1 } else { v.mismatched.append(id) }
            }
            v.extraInTarget += target.keys.filter { source[$0] == nil }.count
        }
        v.mismatched.sort()
        v.sourceChecksum = Self.checksum(items: items, data: data)
        v.targetChecksum = Self.checksum(
            items: items.keys.reduce(into: [:]) { $0[$1] = targetItems[$1] },
            data: data.keys.reduce(into: [:]) { $0[$1] = targetData[$1] })
        return v
    }

    // MARK: - Content

    /// The item as memoryd stores it: `content_hash` filled when missing, the default type when empty; nil
    /// when it has no timestamp (it could not be listed by one in the target).
    static func normalized(_ raw: MemoryItem) -> MemoryItem? {
        guard raw.timestamp != nil else { return nil }
        var item = raw
        if item.itemType.isEmpty { item.itemType = MemoryItem.defaultItemType }
        if item.contentHash == nil { item.metadata["content_hash"] = .string(SHA256.hexDigest(item.textContent)) }
        return item
    }

    /// SHA-256 over the sorted `(id, digest)` pairs, hex; ids absent on a side count as digest 0.
    static func checksum(items: [String: UInt64?], data: [String: UInt64?]) -> String {
        var bytes: [UInt8] = []
        for (prefix, map) in [("m:", items), ("a:", data)] {
            for id in map.keys.sorted() {
                bytes += Array((prefix + id + "=" + String((map[id] ?? nil) ?? 0, radix: 16) + "\n").utf8)
            }
        }
        return SHA256.digest(bytes).map { String($0, radix: 16).leftPadded(2) }.joined()
    }

    static func checksum(items: [String: UInt64], data: [String: UInt64]) -> String {
        checksum(items: items.mapValues { Optional($0) }, data: data.mapValues { Optional($0) })
    }

    /// FNV-1a (64 bit) over every field of the item, the embedding's float bits and the metadata's sorted JSON.
    public static func digest(_ item: MemoryItem) -> UInt64 {
        var h = FNV1a()
        for s in [item.id, item.userID, item.sessionID, item.itemType, item.personaActive, item.textContent] {
            h.add(s)
        }
        h.add(item.timestamp?.microseconds ?? Int64.min)
        h.add(item.expiration?.microseconds ?? Int64.min)
        h.add(Int64(item.embedding.count))
        for x in item.embedding { h.add(UInt64(x.bitPattern)) }
        h.add(JSONValue.object(item.metadata).serialized())
        return h.value
    }

    public static func digest(_ data: AgentData) -> UInt64 {
        var h = FNV1a()
        for s in [data.id, data.agentID, data.dataType] { h.add(s) }
        h.add(data.timestamp?.microseconds ?? Int64.min)
        h.add(data.expiration?.microseconds ?? Int64.min)
        h.add(data.content.map { $0.serialized() } ?? "\u{0}none")
        h.add(JSONValue.object(data.metadata).serialized())
        return h.value
    }
}

/// FNV-1a, 64 bit: a fast digest for comparing records (not against an adversary; the checksum over all of
/// them is SHA-256).
struct FNV1a {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(byte: UInt8) {
        value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
    }

    mutating func add(_ s: String) {
        for b in s.utf8 { add(byte: b) }
        add(byte: 0xff)  // never in UTF-8: ends the field
    }

    mutating func add(_ n: Int64) { add(UInt64(bitPattern: n)) }

    mutating func add(_ n: UInt64) {
        for i in 0..<8 { add(byte: UInt8(truncatingIfNeeded: n >> (i * 8))) }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
