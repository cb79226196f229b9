import MemoryDomain
import MemoryUtilities

/// One worker's connection to Firestore: one kept-alive HTTP connection, the SPEC methods on top of it.
final class FirestoreConnection: StoreConnection {
    let rest: FirestoreREST
    let shared: FirestoreShared
    private var closed = false

    var config: FirestoreConfig { shared.config }

    init(shared: FirestoreShared) throws(MemoryError) {
        self.shared = shared
        rest = try FirestoreREST(shared: shared)
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

    // MARK: - Reads and writes of single documents

    /// A stored document (with `updateTime`), or nil when there is none.
    func fetch(_ name: String, operation: String, context: CallContext) throws(MemoryError) -> JSONValue? {
        try fetchMany([name], operation: operation, context: context)[name] ?? nil
    }

    /// Documents by name through `documents:batchGet` (names travel in the body, so ids never need URL
    /// escaping); missing ones map to nil.
    func fetchMany(_ names: [String], operation: String, context: CallContext) throws(MemoryError) -> [String:
        JSONValue?]
    {
        let body = JSONValue.object(["documents": .array(names.map { .string($0) })])
        switch try rest.call("batchGet", body: body, context: context) {
        case .failed(let status): throw status.error(operation)
        case .ok(let json):
            var out: [String: JSONValue?] = [:]
            for entry in json.arrayValue ?? [] {
                if let doc = entry["found"], let name = doc["name"]?.stringValue {
                    out[name] = .some(doc)
                } else if let name = entry["missing"]?.stringValue {
                    out[name] = .some(nil)
                }
            }
            return out
        }
    }

    /// `update` write of a whole document (replacing all fields), with an optional precondition.
    static func updateWrite(name: String, fields: [String: JSONValue], precondition: JSONValue?) -> JSONValue {
        var w: [String: JSONValue] = ["update": .object(["name": .string(name), "fields": .object(fields)])]
        if let precondition { w["currentDocument"] = precondition }
        return .object(w)
    }

    static let mustNotExist = JSONValue.object(["exists": .bool(false)])
    static func unchangedSince(_ doc: JSONValue) -> JSONValue? {
        doc["updateTime"].map { .object(["updateTime": $0]) }
    }

    /// Commits writes atomically; nil on success, else Firestore's answer.
    func commit(_ writes: [JSONValue], context: CallContext) throws(MemoryError) -> FirestoreStatus? {
        switch try rest.call("commit", body: .object(["writes": .array(writes)]), context: context) {
        case .ok: return nil
        case .failed(let status): return status
        }
    }

    /// Creates a document that must not exist yet (or replaces it when `upsert`).
    ///
    /// An existing document blocks the create unless it has expired (it is invisible, so the id is free) or
    /// it is what this very call wrote on an earlier attempt (a retried create meeting its own write).
    func create(
        name: String, fields: [String: JSONValue], upsert: Bool, kind: String, id: String,
        isExpired: (JSONValue) -> Bool, sameContent: (JSONValue) -> Bool, context: CallContext
    ) throws(MemoryError) {
        let operation = "firestore.commit"
        var precondition: JSONValue? = upsert ? nil : Self.mustNotExist
        for _ in 0..<3 {
            guard
                let status = try commit(
                    [Self.updateWrite(name: name, fields: fields, precondition: precondition)], context: context)
            else {
                return
            }
            let retried = rest.lastCallRetried
            switch status.status {
            case "ALREADY_EXISTS", "FAILED_PRECONDITION", "NOT_FOUND":
                guard !upsert else { throw status.error(operation) }
                guard let existing = try fetch(name, operation: operation, context: context) else {
                    precondition = Self.mustNotExist  // deleted meanwhile: try again
                    continue
                }
                if retried && sameContent(existing) { return }
                guard isExpired(existing), let unchanged = Self.unchangedSince(existing) else {
                    throw MemoryError(
                        .duplicate, "\(kind) id \(Validation.show(id)) already exists", operation: operation)
                }
                precondition = unchanged
            default:
                throw status.error(operation)
            }
        }
        throw MemoryError(
            .duplicate, "\(kind) id \(Validation.show(id)) is being written concurrently", operation: operation)
    }

    /// Deletes an unexpired document; NotFound when it is missing or expired.
    func deleteLive(name: String, kind: String, id: String, context: CallContext) throws(MemoryError) {
        let operation = "firestore.commit"
        for _ in 0..<3 {
            guard let doc = try fetch(name, operation: operation, context: context),
                !(DocumentMapping.expiration(of: doc).map { $0 <= context.now } ?? false)
            else {
                throw .notFound("\(kind) \(Validation.show(id)) does not exist")
            }
            var write: [String: JSONValue] = ["delete": .string(name)]
            write["currentDocument"] = Self.unchangedSince(doc) ?? .object(["exists": .bool(true)])
            guard let status = try commit([.object(write)], context: context) else { return }
            switch status.status {
            case "NOT_FOUND" where rest.lastCallRetried: return  // our own earlier attempt deleted it
            case "NOT_FOUND": throw .notFound("\(kind) \(Validation.show(id)) does not exist")
            case "FAILED_PRECONDITION": continue  // changed between read and delete: look again
            default: throw status.error(operation)
            }
        }
        throw .operation(operation, "\(kind) \(Validation.show(id)) kept changing while being deleted")
    }

    // MARK: - StoreConnection: items

    func addMemoryItem(_ item: MemoryItem, upsert: Bool, context: CallContext) throws(MemoryError) {
        try create(
            name: itemName(item.id), fields: DocumentMapping.fields(of: item), upsert: upsert, kind: "memory item",
            id: item.id,
            isExpired: { DocumentMapping.item(from: $0).isExpired(at: context.now) },
            sameContent: { DocumentMapping.item(from: $0) == item }, context: context)
    }

    func getMemoryItem(id: String, context: CallContext) throws(MemoryError) -> MemoryItem {
        guard let doc = try fetch(itemName(id), operation: "firestore.batchGet", context: context) else {
            throw .notFound("memory item \(Validation.show(id)) does not exist")
        }
        let item = DocumentMapping.item(from: doc)
        guard !item.isExpired(at: context.now) else {
            throw .notFound("memory item \(Validation.show(id)) does not exist (expired)")
        }
        return item
    }

    func deleteMemoryItem(id: String, context: CallContext) throws(MemoryError) {
        try deleteLive(name: itemName(id), kind: "memory item", id: id, context: context)
    }

    // MARK: - StoreConnection: agent data

    func addAgentData(_ data: AgentData, context: CallContext) throws(MemoryError) {
        try create(
            name: agentName(data.id), fields: DocumentMapping.fields(of: data), upsert: false, kind: "agent data",
            id: data.id,
            isExpired: { DocumentMapping.agentData(from: $0).isExpired(at: context.now) },
            sameContent: { DocumentMapping.agentData(from: $0) == data }, context: context)
    }

    func getAgentData(id: String, context: CallContext) throws(MemoryError) -> AgentData {
        guard let doc = try fetch(agentName(id), operation: "firestore.batchGet", context: context) else {
            throw .notFound("agent data \(Validation.show(id)) does not exist")
        }
        let data = DocumentMapping.agentData(from: doc)
        guard !data.isExpired(at: context.now) else {
            throw .notFound("agent data \(Validation.show(id)) does not exist (expired)")
        }
        return data
    }

    // MARK: - Health

    func health(context: CallContext) -> BackendHealth {
        let start = monotonicNanos()
        var details: [String: JSONValue] = [:]
        var failure: MemoryError?
        // The cheapest round trip that exercises auth and the database: a read of a document that never exists.
        do throws(MemoryError) {
            let probe = CallContext(
                deadline: min(context.deadline, .after(milliseconds: UInt64(max(1, config.requestTimeoutMs)))),
                now: context.now)
            let body = JSONValue.object(["documents": .array([.string(itemName("memoryd-health-probe"))])])
            if case .failed(let status) = try rest.call("batchGet", body: body, context: probe, retry: false) {
                failure = status.error("firestore.batchGet")
            }
        } catch {
            failure = error
        }
        let latency = Double(monotonicNanos() - start) / 1e6
        let state = shared.breaker.state
        details["firestore_latency_ms"] = .number((latency * 100).rounded() / 100)
        details["firestore_error"] = .string(failure?.message ?? "")
        details["circuit_state"] = .string(state.rawValue)
        details["retries_total"] = .number(Double(shared.retries.load(ordering: .relaxed)))
        if let failure {
            return BackendHealth(
                status: .unhealthy, reason: "Firestore unreachable: \(failure.message)", details: details)
        }
        if state == .halfOpen {
            return BackendHealth(status: .degraded, reason: "circuit breaker half-open", details: details)
        }
        return BackendHealth(status: .healthy, details: details)
    }
}
