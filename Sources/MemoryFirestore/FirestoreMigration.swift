import CFirestoreProto
import Logging
import MemoryDomain
import MemoryUtilities

/// `memoryd migrate --from v1`: the original memory manager's documents rewritten in place to SPEC §9.
///
/// What changes, and only that (an update mask names the fields, so nothing else a document holds is touched):
/// - `embedding` stored as a plain array of numbers becomes a vector value with the same doubles (integers
///   become doubles), so that `findNearest` sees it; `--revert` turns vectors back into plain arrays;
/// - `metadata.content_hash`, when missing, is set to the SHA-256 of `text_content` (the duplicate check
///   needs it; the old manager computed it the same way, so a revert keeps it).
///
/// What stays: `item_type: "message"` (memoryd reads it, and rewriting it would make the revert lossy),
/// timestamps (the old naive `utcnow()` values are UTC timestamps already), missing or null optional fields,
/// unknown fields. Agent data has nothing to convert; it is scanned to report malformed documents.
///
/// Each write carries the `update_time` the scan saw, so a document a daemon changed meanwhile is not
/// clobbered: it is read again and planned again (up to 3 times, then counted as failed). Documents are
/// visited in `__name__` order, one page of `firestore.batch_size` at a time, and every write is a whole
/// conversion of one document, so a run that is killed leaves each document either old or new, and a rerun
/// finishes the rest (converted documents count as current).
extension FirestoreBackend: InPlaceMigrating {
    public static let legacyFormats = ["v1"]

    public func migrateInPlace(
        _ options: InPlaceMigrationOptions, logger: Logger, progress: (MigrationSummary) -> Void
    ) throws(MemoryError) -> MigrationSummary {
        guard Self.legacyFormats.contains(options.format) else {
            throw .validation(
                "the firestore backend converts from \(Self.legacyFormats.joined(separator: ", ")), not \(options.format)"
            )
        }
        let connection = try FirestoreConnection(shared: shared)
        defer { connection.close() }
        var total = MigrationSummary()
        for kind in [MigrationCollection.memoryItems, .agentData] {
            let collection = kind == .memoryItems ? config.memoryCollection : config.agentCollection
            total = try connection.migrateCollection(
                collection, kind: kind, options: options, logger: logger, before: total, progress: progress)
        }
        return total
    }
}

enum MigrationCollection { case memoryItems, agentData }

/// What one document needs.
enum MigrationPlan {
    case current
    case failed(String)
    case rewrite(Rewrite)

    struct Rewrite {
        var name: String
        var version: DocumentVersion?
        /// The new `embedding`: its doubles and whether they become a vector (else a plain array).
        var embedding: (values: [Double], asVector: Bool)?
        /// `metadata.content_hash` to set; `metadataIsMap` tells whether only that path is written.
        var contentHash: String?
        var metadataIsMap: Bool
    }
}

extension FirestoreConnection {
    func migrateCollection(
        _ collection: String, kind: MigrationCollection, options: InPlaceMigrationOptions, logger: Logger,
        before: MigrationSummary, progress: (MigrationSummary) -> Void
    ) throws(MemoryError) -> MigrationSummary {
        var summary = before
        let pageSize = max(1, min(config.batchSize, 1000))
        var after: String?
        // A scan runs far longer than one call: each request gets its own deadline.
        func context() -> CallContext {
            CallContext(deadline: .after(milliseconds: UInt64(max(60_000, config.requestTimeoutMs * 4))))
        }
        while true {
            let start = after
            let plans = try runQuery(
                { a in
                    a.query(
                        collection: collection, filters: [], orderBy: [a.order("__name__", descending: false)],
                        startAfter: start.map { [a.referenceValue($0)] }, limit: pageSize)
                }, context: context()
            ) { doc in (name: DocumentDecoding.name(doc), plan: Self.plan(doc, kind: kind, options: options)) }
            guard let last = plans.last else { break }
            after = last.name
            summary.scanned += plans.count
            var rewrites: [MigrationPlan.Rewrite] = []
            for (name, plan) in plans {
                switch plan {
                case .current: summary.current += 1
                case .failed(let why): summary.failed += Self.reportFailed(name, why, logger: logger)
                case .rewrite(let r): rewrites.append(r)
                }
            }
            if options.dryRun {
                summary.converted += rewrites.count
            } else if !rewrites.isEmpty {
                let outcome = try apply(rewrites, kind: kind, options: options, logger: logger, context: context)
                summary.converted += outcome.converted
                summary.current += outcome.current
                summary.failed += outcome.failed
            }
            progress(summary)
            logger.debug("\(collection): page done; so far \(summary.line)")
            if plans.count < pageSize { break }
        }
        return summary
    }

    /// Writes the rewrites (BatchWrite, `batch_size` per request, each conditioned on the version seen); a
    /// document that changed meanwhile is read and planned again, up to 3 times.
    func apply(
        _ rewrites: [MigrationPlan.Rewrite], kind: MigrationCollection, options: InPlaceMigrationOptions,
        logger: Logger, context: () -> CallContext
    ) throws(MemoryError) -> MigrationSummary {
        var outcome = MigrationSummary()
        var pending = rewrites
        for attempt in 0..<4 {
            if pending.isEmpty { break }
            var conflicted: [String] = []
            for chunk in chunks(sizes: pending.map { ($0.embedding?.values.count ?? 0) * 11 + 1024 }) {
                let (statuses, _) = try batchWrite(count: chunk.count, context: context()) { a, k in
                    Self.write(pending[chunk[k]], arena: a)
                }
                for (k, status) in statuses.enumerated() {
                    let name = pending[chunk[k]].name
                    guard let status else {
                        outcome.converted += 1
                        continue
                    }
                    switch status.code {
                    case .failedPrecondition, .notFound, .aborted: conflicted.append(name)
                    default:
                        outcome.failed += Self.reportFailed(
                            name, "the write failed: \(status.error(FirestoreMethod.batchWrite.operation).message)",
                            logger: logger)
                    }
                }
            }
            pending = []
            if conflicted.isEmpty { break }
            guard attempt < 3 else {
                for name in conflicted {
                    outcome.failed += Self.reportFailed(name, "it kept changing while being converted", logger: logger)
                }
                break
            }
            // Changed (or deleted) since the scan: read again and plan again.
            let again = try fetch(conflicted, context: context()) { Self.plan($0, kind: kind, options: options) }
            for name in conflicted {
                switch again[name] {
                case nil, .current: outcome.current += 1  // deleted meanwhile, or a daemon rewrote it already
                case .failed(let why): outcome.failed += Self.reportFailed(name, why, logger: logger)
                case .rewrite(let r): pending.append(r)
                }
            }
        }
        return outcome
    }

    static func reportFailed(_ name: String, _ why: String, logger: Logger) -> Int {
        let short = name.split(separator: "/").suffix(2).joined(separator: "/")
        logger.warning("cannot convert \(short): \(why)")
        return 1
    }

    // MARK: - Planning

    /// What `doc` needs to reach the wanted layout (SPEC §9, or v1 with `revert`).
    static func plan(_ doc: UnsafePointer<FSDocument>, kind: MigrationCollection, options: InPlaceMigrationOptions)
        -> MigrationPlan
    {
        if kind == .agentData {
            return DocumentChecks.agentDataProblem(doc).map { .failed($0) } ?? .current
        }
        if let problem = DocumentChecks.itemProblem(doc) { return .failed(problem) }
        if DocumentDecoding.storedTimestamp(doc) == nil {
            return .failed("it has no timestamp (memoryd lists and pages items by it): set one, then run again")
        }
        var rewrite = MigrationPlan.Rewrite(
            name: DocumentDecoding.name(doc), version: DocumentDecoding.version(doc), embedding: nil, contentHash: nil,
            metadataIsMap: false)
        if let e = DocumentDecoding.field(doc, "embedding"), let (values, isVector) = doubles(e) {
            if isVector == options.revert {
                rewrite.embedding = (values, !options.revert)
                if !options.revert && values.count != options.embeddingDimension {
                    return .failed(
                        "embedding has \(values.count) values; embedding_dimension is \(options.embeddingDimension)")
                }
            }
        }
        if !options.revert {
            let metadata = DocumentDecoding.field(doc, "metadata")
            rewrite.metadataIsMap =
                metadata?.pointee.value_type_case == GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_MAP_VALUE
            var hasHash = false
            if let metadata, case .object(let o) = DocumentDecoding.json(metadata), case .string = o["content_hash"] {
                hasHash = true
            }
            if !hasHash {
                let text = DocumentDecoding.field(doc, "text_content").map(DocumentDecoding.string) ?? ""
                rewrite.contentHash = SHA256.hexDigest(text)
            }
        }
        return rewrite.embedding == nil && rewrite.contentHash == nil ? .current : .rewrite(rewrite)
    }

    /// The doubles of an embedding exactly as stored, and whether it is a vector value (else a plain array);
    /// nil for null or anything else.
    static func doubles(_ v: UnsafePointer<FSValue>) -> ([Double], Bool)? {
        var array: UnsafeMutablePointer<FSArrayValue>?
        var isVector = false
        switch v.pointee.value_type_case {
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_ARRAY_VALUE:
            array = v.pointee.array_value
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_MAP_VALUE:
            guard DocumentDecoding.vector(v) != nil, let map = v.pointee.map_value, let entries = map.pointee.fields
            else { return nil }
            isVector = true
            for i in 0..<map.pointee.n_fields {
                guard let e = entries[i], let key = e.pointee.key, String(cString: key) == "value",
                    let x = e.pointee.value,
                    x.pointee.value_type_case == GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_ARRAY_VALUE
                else { continue }
                array = x.pointee.array_value
            }
        default:
            return nil
        }
        guard let array, let values = array.pointee.values else { return ([], isVector) }
        var out: [Double] = []
        out.reserveCapacity(array.pointee.n_values)
        for i in 0..<array.pointee.n_values {
            guard let x = values[i], let d = DocumentDecoding.number(x) else { return nil }
            out.append(d)
        }
        return (out, isVector)
    }

    /// The masked update of one rewrite, conditioned on the version the scan saw.
    static func write(_ r: MigrationPlan.Rewrite, arena a: ProtoArena) -> UnsafeMutablePointer<FSWrite> {
        var fields: [(String, UnsafeMutablePointer<FSValue>)] = []
        var mask: [String] = []
        if let e = r.embedding {
            fields.append(("embedding", e.asVector ? a.vectorValue(e.values) : a.doublesArray(e.values)))
            mask.append("embedding")
        }
        if let hash = r.contentHash {
            fields.append(("metadata", a.mapValue([("content_hash", a.stringValue(hash))])))
            // Into the stored map when there is one; else `metadata` (missing or null) becomes that map.
            mask.append(r.metadataIsMap ? "metadata.content_hash" : "metadata")
        }
        return a.updateWrite(
            a.document(name: r.name, fields: fields), r.version.map { .unchangedSince($0) } ?? .mustExist, mask: mask)
    }
}
