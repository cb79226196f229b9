import MemoryDomain
import MemoryUtilities
import MemoryWire

/// The typed client of memoryd: one method per RPC of SPEC §5. Failures are `MemoryError`s with the
/// SPEC §3 types. Not thread-safe: use one per thread.
public final class MemoryClient {
    public let connection: ClientConnection
    /// Deadline sent with every call (0 = the server's default).
    public var timeoutMs: UInt64

    public init(socketPath: String, timeoutMs: UInt64 = 0) throws(MemoryError) {
        connection = try ClientConnection(socketPath: socketPath)
        self.timeoutMs = timeoutMs
    }

    public func close() { connection.close() }

    private func call(_ r: MethodRequest) throws(MemoryError) -> MethodResponse {
        try connection.call(r, timeoutMs: timeoutMs)
    }

    private func unexpected(_ r: MethodResponse) -> MemoryError {
        .call(.internal, "unexpected response \(r)")
    }

    public func ping() throws(MemoryError) -> (version: String, uptimeMs: UInt64) {
        guard case .ping(let v, let u) = try call(.ping) else { throw .call(.internal, "bad ping") }
        return (v, u)
    }

    public func addMemoryItem(_ item: MemoryItem, upsert: Bool = false, rejectDuplicateContent: Bool = false)
        throws(MemoryError) -> String
    {
        let r = try call(.addMemoryItem(item: item, upsert: upsert, rejectDuplicateContent: rejectDuplicateContent))
        guard case .addMemoryItem(let id) = r else { throw unexpected(r) }
        return id
    }

    public func addMemoryItems(_ items: [MemoryItem], upsert: Bool = false) throws(MemoryError) -> [ItemResult] {
        let r = try call(.addMemoryItems(items: items, upsert: upsert))
        guard case .addMemoryItems(let results) = r else { throw unexpected(r) }
        return results
    }

    public func getMemoryItem(_ id: String) throws(MemoryError) -> MemoryItem {
        let r = try call(.getMemoryItem(id: id))
        guard case .getMemoryItem(let item) = r else { throw unexpected(r) }
        return item
    }

    public func deleteMemoryItem(_ id: String) throws(MemoryError) {
        _ = try call(.deleteMemoryItem(id: id))
    }

    public func conversationHistory(_ request: HistoryRequest) throws(MemoryError) -> Page<MemoryItem> {
        let r = try call(.getConversationHistory(request))
        guard case .getConversationHistory(let page) = r else { throw unexpected(r) }
        return page
    }

    public func semanticSearch(_ request: SearchRequest) throws(MemoryError) -> [ScoredItem] {
        let r = try call(.semanticSearch(request))
        guard case .semanticSearch(let results) = r else { throw unexpected(r) }
        return results
    }

    public func checkDuplicate(_ item: MemoryItem) throws(MemoryError) -> (duplicate: Bool, existingID: String) {
        let r = try call(.checkDuplicate(item: item))
        guard case .checkDuplicate(let d, let e) = r else { throw unexpected(r) }
        return (d, e)
    }

    public func addRawAgentData(_ data: AgentData) throws(MemoryError) -> String {
        let r = try call(.addRawAgentData(data))
        guard case .addRawAgentData(let id) = r else { throw unexpected(r) }
        return id
    }

    public func getAgentData(_ id: String) throws(MemoryError) -> AgentData {
        let r = try call(.getAgentData(id: id))
        guard case .getAgentData(let d) = r else { throw unexpected(r) }
        return d
    }

    public func listAgentData(_ request: ListAgentDataRequest) throws(MemoryError) -> Page<AgentData> {
        let r = try call(.listAgentData(request))
        guard case .listAgentData(let page) = r else { throw unexpected(r) }
        return page
    }

    public func cleanupExpiredItems() throws(MemoryError) -> UInt64 {
        let r = try call(.cleanupExpiredItems)
        guard case .cleanupExpiredItems(let n) = r else { throw unexpected(r) }
        return n
    }

    public func healthCheck() throws(MemoryError) -> HealthReport {
        let r = try call(.healthCheck)
        guard case .healthCheck(let h) = r else { throw unexpected(r) }
        return h
    }

    /// The daemon's metrics in the Prometheus text exposition format (0.0.4), as `GET /metrics` serves them.
    public func getMetrics() throws(MemoryError) -> String {
        let r = try call(.getMetrics)
        guard case .getMetrics(let text) = r else { throw unexpected(r) }
        return text
    }
}
