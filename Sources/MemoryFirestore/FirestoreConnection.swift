import CFirestoreProto
import MemoryDomain
import MemoryUtilities

/// One worker's connection to Firestore: one kept-alive HTTP/2 connection carrying gRPC calls, the SPEC
/// methods on top of it.
final class FirestoreConnection: StoreConnection {
    let rpc: FirestoreRPC
    let shared: FirestoreShared
    /// Answers are unpacked here one message at a time and dropped once read.
    let answers = ProtoArena()
    /// Tests only: the `limit` of each findNearest query of the last search.
    var lastSearchLimits: [Int] = []
    private var closed = false

    var config: FirestoreConfig { shared.config }

    init(shared: FirestoreShared) throws(MemoryError) {
        self.shared = shared
        rpc = try FirestoreRPC(shared: shared)
        shared.connectionsOpen.add(1, ordering: .relaxed)
    }

    deinit { close() }

    func close() {
        guard !closed else { return }
        closed = true
        shared.connectionsOpen.subtract(1, ordering: .relaxed)
    }

    func itemName(_ id: String) -> String { shared.documentName(collection: config.memoryCollection, id: id) }
    func agentName(_ id: String) -> String { shared.documentName(collection: config.agentCollection, id: id) }

    // MARK: - The four methods

    /// BatchGetDocuments: the found documents by name, each turned into `T` as its message arrives (missing
    /// ones are absent).
    func fetch<T>(
        _ names: [String], mask: [String]? = nil, context: CallContext, retry: Bool = true,
        decode: (UnsafePointer<FSDocument>) -> T
    ) throws(MemoryError) -> [String: T] {
        let request = ProtoArena().batchGetRequest(database: config.databasePath, names: names, mask: mask)
        var found: [String: T] = [:]
        let status = try rpc.call(
            .batchGetDocuments, request: request, context: context, retry: retry, onAttempt: { found = [:] }
        ) { (bytes) throws(MemoryError) in
            defer { answers.reset() }
            let m = try answers.unpack(
                bytes, google__firestore__v1__batch_get_documents_response__unpack, what: "BatchGetDocumentsResponse")
            if m.pointee.result_case == GOOGLE__FIRESTORE__V1__BATCH_GET_DOCUMENTS_RESPONSE__RESULT_FOUND,
                let doc = m.pointee.found
            {
                found[DocumentDecoding.name(doc)] = decode(doc)
            }
        }
        if let status { throw status.error(FirestoreMethod.batchGetDocuments.operation) }
        return found
    }

    /// RunQuery: the documents of the answer, each turned into `T` as its message arrives.
    func runQuery<T>(
        _ build: (ProtoArena) -> UnsafeMutablePointer<FSQuery>, context: CallContext,
        decode: (UnsafePointer<FSDocument>) -> T
    ) throws(MemoryError) -> [T] {
        let arena = ProtoArena()
        let request = arena.runQueryRequest(parent: config.documentsPath, build(arena))
        var rows: [T] = []
        let status = try rpc.call(.runQuery, request: request, context: context, onAttempt: { rows = [] }) {
            (bytes) throws(MemoryError) in
            defer { answers.reset() }
            let m = try answers.unpack(
                bytes, google__firestore__v1__run_query_response__unpack, what: "RunQueryResponse")
            if let doc = m.pointee.document { rows.append(decode(doc)) }
        }
        if let status { throw status.error(FirestoreMethod.runQuery.operation) }
        return rows
    }

    /// Commit: applies the writes atomically; nil on success, else the status Firestore answered.
    func commit(_ build: (ProtoArena) -> [UnsafeMutablePointer<FSWrite>], context: CallContext) throws(MemoryError)
        -> FirestoreStatus?
    {
        let arena = ProtoArena()
        let request = arena.commitRequest(database: config.databasePath, writes: build(arena))
        return try rpc.call(.commit, request: request, context: context) { _ in }
    }

    // MARK: - Single documents

    /// What a create needs to know about a document that is in the way.
    struct Existing {
        var expired: Bool
        var sameContent: Bool
        var version: DocumentVersion?
    }

    /// Creates a document that must not exist yet (or replaces it when `upsert`).
    ///
    /// An existing document blocks the create unless it has expired (it is invisible, so the id is free) or
    /// it is what this very call wrote on an earlier attempt (a retried create meeting its own write).
    func create(
        name: String, document: (ProtoArena) -> UnsafeMutablePointer<FSDocument>, upsert: Bool, kind: String,
        id: String, existing inspect: (UnsafePointer<FSDocument>) -> Existing, context: CallContext
    ) throws(MemoryError) {
        let operation = FirestoreMethod.commit.operation
        var precondition: ProtoArena.Precondition = upsert ? .none : .mustNotExist
        for _ in 0..<3 {
            guard let status = try commit({ [$0.updateWrite(document($0), precondition)] }, context: context) else {
                return
            }
            let retried = rpc.lastCallRetried
            switch status.code {
            case .alreadyExists, .failedPrecondition, .notFound:
                guard !upsert else { throw status.error(operation) }
                guard let existing = try fetch([name], context: context, decode: inspect)[name] else {
                    precondition = .mustNotExist  // deleted meanwhile: try again
                    continue
                }
                if retried && existing.sameContent { return }
                guard existing.expired, let version = existing.version else {
                    throw MemoryError(
                        .duplicate, "\(kind) id \(Validation.show(id)) already exists", operation: operation)
                }
                precondition = .unchangedSince(version)
            default:
                throw status.error(operation)
            }
        }
        throw MemoryError(
            .duplicate, "\(kind) id \(Validation.show(id)) is being written concurrently", operation: operation)
    }

    /// Deletes an unexpired document; NotFound when it is missing or expired.
    func deleteLive(name: String, kind: String, id: String, context: CallContext) throws(MemoryError) {
        let operation = FirestoreMethod.commit.operation
        for _ in 0..<3 {
            let stored = try fetch([name], mask: ["expiration"], context: context) { doc in
                (expired: DocumentDecoding.isExpired(doc, at: context.now), version: DocumentDecoding.version(doc))
            }[name]
            guard let stored, !stored.expired else { throw .notFound("\(kind) \(Validation.show(id)) not found") }
            let precondition: ProtoArena.Precondition = stored.version.map { .unchangedSince($0) } ?? .mustExist
            guard let status = try commit({ [$0.deleteWrite(name: name, precondition)] }, context: context) else {
                return
            }
            switch status.code {
            case .notFound where rpc.lastCallRetried: return  // our own earlier attempt deleted it
            case .notFound: throw .notFound("\(kind) \(Validation.show(id)) not found")
            case .failedPrecondition: continue  // changed between read and delete: look again
            default: throw status.error(operation)
            }
        }
        throw .operation(operation, "\(kind) \(Validation.show(id)) kept changing while being deleted")
    }

    // MARK: - StoreConnection: items

    func addMemoryItem(_ item: MemoryItem, upsert: Bool, context: CallContext) throws(MemoryError) {
        let name = itemName(item.id)
        try create(
            name: name, document: { $0.document(item, name: name) }, upsert: upsert, kind: "memory item", id: item.id,
            existing: { doc in
                let stored = DocumentDecoding.item(doc)
                return Existing(
                    expired: stored.isExpired(at: context.now), sameContent: stored == item,
                    version: DocumentDecoding.version(doc))
            }, context: context)
    }

    func getMemoryItem(id: String, context: CallContext) throws(MemoryError) -> MemoryItem {
        let name = itemName(id)
        let found = try fetch([name], context: context) { doc -> Result<MemoryItem, MalformedDocument> in
            if let problem = DocumentChecks.itemProblem(doc) {
                return .failure(MalformedDocument(id: id, problem: problem))
            }
            return .success(DocumentDecoding.item(doc))
        }[name]
        switch found {
        case .success(let item) where !item.isExpired(at: context.now):
            return item
        case .failure(let bad):
            throw Self.malformed(kind: "memory item", collection: config.memoryCollection, id: id, problem: bad.problem)
        default:
            throw .notFound("memory item \(Validation.show(id)) not found")
        }
    }

    func deleteMemoryItem(id: String, context: CallContext) throws(MemoryError) {
        try deleteLive(name: itemName(id), kind: "memory item", id: id, context: context)
    }

    // MARK: - StoreConnection: agent data

    func addAgentData(_ data: AgentData, context: CallContext) throws(MemoryError) {
        let name = agentName(data.id)
        try create(
            name: name, document: { $0.document(data, name: name) }, upsert: false, kind: "agent data", id: data.id,
            existing: { doc in
                let stored = DocumentDecoding.agentData(doc)
                return Existing(
                    expired: stored.isExpired(at: context.now), sameContent: stored == data,
                    version: DocumentDecoding.version(doc))
            }, context: context)
    }

    func getAgentData(id: String, context: CallContext) throws(MemoryError) -> AgentData {
        let name = agentName(id)
        let found = try fetch([name], context: context) { doc -> Result<AgentData, MalformedDocument> in
            if let problem = DocumentChecks.agentDataProblem(doc) {
                return .failure(MalformedDocument(id: id, problem: problem))
            }
            return .success(DocumentDecoding.agentData(doc))
        }[name]
        switch found {
        case .success(let data) where !data.isExpired(at: context.now):
            return data
        case .failure(let bad):
            throw Self.malformed(kind: "agent data", collection: config.agentCollection, id: id, problem: bad.problem)
        default:
            throw .notFound("agent data \(Validation.show(id)) not found")
        }
    }

    // MARK: - Health

    func health(context: CallContext) -> BackendHealth {
        let start = monotonicNanos()
        var details: [String: JSONValue] = [
            "project_id": .string(config.projectID), "database": .string(config.database),
            "endpoint": .string(config.endpointDescription), "batch_size": .number(Double(config.batchSize)),
        ]
        var failure: MemoryError?
        // The cheapest round trip that exercises auth and the database: a read of a document that never exists.
        do throws(MemoryError) {
            let probe = CallContext(
                deadline: min(context.deadline, .after(milliseconds: UInt64(max(1, config.requestTimeoutMs)))),
                now: context.now)
            _ = try fetch([itemName("memoryd-health-probe")], context: probe, retry: false) { _ in true }
        } catch {
            failure = error
        }
        let latency = Double(monotonicNanos() - start) / 1e6
        let state = shared.breaker.state
        details["firestore_latency_ms"] = .number((latency * 100).rounded() / 100)
        details["firestore_error"] = .string(failure?.message ?? "")
        details["circuit_state"] = .string(state.rawValue)
        details["retries_total"] = .number(Double(shared.retries.load(ordering: .relaxed)))
        // The backend's last error (statistics) is this very failure most of the time: say it once.
        if let failure, shared.lastError == failure.message { details["firestore_last_error"] = .string("") }
        if let failure {
            return BackendHealth(status: .unhealthy, reason: failure.message, details: details)
        }
        if state == .halfOpen {
            return BackendHealth(status: .degraded, reason: "circuit breaker half-open", details: details)
        }
        return BackendHealth(status: .healthy, details: details)
    }
}
