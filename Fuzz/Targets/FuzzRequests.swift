// libFuzzer target: decoding and validating the request of every method.
//
// The first input byte picks the method, the rest is its payload. A decoded request goes through
// MemoryService.handle on a store that stores nothing (so every validation and normalization path runs),
// and is re-encoded: the result must decode to the same request. A request the service accepted must
// also satisfy the limits the service promises its store.
import MemoryDomain
import MemoryUtilities
import MemoryWire

/// A store that accepts everything and remembers nothing: the service's checks are what is fuzzed.
private final class NullStore: StoreConnection {
    var lastItems: [MemoryItem] = []
    func addMemoryItem(_ item: MemoryItem, upsert: Bool, context: CallContext) throws(MemoryError) {
        lastItems = [item]
    }
    func addMemoryItems(_ items: [MemoryItem], upsert: Bool, context: CallContext) throws(MemoryError) -> [MemoryError?]
    {
        lastItems = items
        return items.map { _ in nil }
    }
    func getMemoryItem(id: String, context: CallContext) throws(MemoryError) -> MemoryItem { throw .notFound("none") }
    func deleteMemoryItem(id: String, context: CallContext) throws(MemoryError) { throw .notFound("none") }
    func conversationHistory(_ query: HistoryQuery, context: CallContext) throws(MemoryError) -> Page<MemoryItem> {
        check((1...1000).contains(query.limit), "history limit \(query.limit) passed validation")
        return Page(items: [])
    }
    func semanticSearch(_ query: SearchQuery, context: CallContext) throws(MemoryError) -> [ScoredItem] {
        check(
            query.embedding.count == 8 && query.embedding.allSatisfy(\.isFinite),
            "bad query embedding passed validation")
        check((1...1000).contains(query.topK), "top_k \(query.topK) passed validation")
        return []
    }
    func findByContentHash(userID: String, contentHash: String, context: CallContext) throws(MemoryError) -> String? {
        nil
    }
    func addAgentData(_ data: AgentData, context: CallContext) throws(MemoryError) {}
    func getAgentData(id: String, context: CallContext) throws(MemoryError) -> AgentData { throw .notFound("none") }
    func listAgentData(_ query: AgentDataQuery, context: CallContext) throws(MemoryError) -> Page<AgentData> {
        Page(items: [])
    }
    func listMemoryItems(_ query: ListItemsQuery, context: CallContext) throws(MemoryError) -> Page<MemoryItem> {
        check((1...1000).contains(query.limit), "list limit \(query.limit) passed validation")
        return Page(items: [])
    }
    func cleanupExpired(context: CallContext) throws(MemoryError) -> UInt64 { 0 }
    func health(context: CallContext) -> BackendHealth { BackendHealth(status: .healthy, details: [:]) }
    func close() {}
}

nonisolated(unsafe) private let store = NullStore()
nonisolated(unsafe) private let service = MemoryService(
    store: store, limits: Limits(embeddingDimension: 8), version: "fuzz", startedAtUptimeNanos: 0,
    healthFigures: { .init(backend: "null", firestore: false, details: [:]) })

private func checkStored(_ item: MemoryItem) {
    check(Validation.isValidID(item.id), "invalid id \(item.id) passed validation")
    check(!item.userID.isEmpty && item.userID.utf8.count <= 256, "bad user_id passed validation")
    check(
        item.embedding.isEmpty || (item.embedding.count == 8 && item.embedding.allSatisfy(\.isFinite)),
        "bad embedding passed validation")
    check(item.textContent.utf8.count <= 512 * 1024, "oversized text passed validation")
    check(item.metadata["content_hash"]?.stringValue == SHA256.hexDigest(item.textContent), "content_hash not set")
    check(item.timestamp?.isValid == true, "timestamp not set")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequests(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let methods = MemoryMethod.allCases
    let method = methods[Int(data[0]) % methods.count]
    let payload = UnsafeRawBufferPointer(start: data + 1, count: size - 1)

    let request: MethodRequest
    do throws(MemoryError) {
        request = try PayloadCodec.decodeRequest(method, payload)
    } catch {
        check(error.type == .validation, "undecodable payload gave \(error), not a ValidationError")
        return 0
    }
    check(request.method == method)

    // Round trip. A NaN is unequal to itself, so requests carrying one are not compared (Array's == may
    // still say equal when both share storage, so look at the text instead).
    if !"\(request)".contains("nan") {
        let again = try? PayloadCodec.decodeRequest(method, PayloadCodec.encodeRequest(request))
        check(
            again == request,
            "re-encoded \(method) request decodes differently: \(request) vs \(String(describing: again))")
    }

    // The service's validation and normalization, with a store that keeps nothing.
    store.lastItems = []
    do throws(MemoryError) {
        let response = try service.handle(request, context: CallContext(deadline: .after(milliseconds: 60_000)))
        for item in store.lastItems { checkStored(item) }
        // The response must encode (the server does this next).
        _ = PayloadCodec.encodeResponse(response)
    } catch {
        check(!error.message.isEmpty, "an error without a message: \(error)")
        check(error.type != .storage, "a StorageError from validation: \(error)")
    }
    // Direct entry points too, where a request carries their input.
    switch request {
    case .getConversationHistory(let r): _ = try? service.historyQuery(r)
    case .semanticSearch(let r): _ = try? service.searchQuery(r)
    case .checkDuplicate(let item): _ = try? service.normalize(item, field: "item", context: CallContext())
    default: break
    }
    return 0
}
