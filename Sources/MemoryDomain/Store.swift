import MemoryUtilities

/// What every call to a store carries: its deadline and the instant that counts as "now" for expiration.
public struct CallContext: Sendable {
    public var deadline: Deadline
    public var now: Timestamp

    public init(deadline: Deadline = .distantFuture, now: Timestamp = .now()) {
        self.deadline = deadline
        self.now = now
    }
}

/// A storage backend shared by the whole daemon (sqlite database, Firestore project). It hands each worker
/// its own connection, so the worker count bounds the backend connections.
public protocol StoreBackend: AnyObject, Sendable {
    /// The registered name (``BackendRegistration/name``).
    var name: String { get }
    /// Whether HealthCheck's `firestore` field may be true (SPEC §5: "the Firestore backend is configured
    /// and reachable"). False unless the backend says otherwise.
    var reportsAsFirestore: Bool { get }
    /// Opens one connection, owned by one worker thread from then on.
    func makeConnection() throws(MemoryError) -> StoreConnection
    /// Figures about the backend as a whole (pool use, circuit state, ...), for HealthCheck.
    func statistics() -> [String: JSONValue]
    /// Flushes and releases what the backend holds. Connections are closed first.
    func shutdown()
    /// Where to report request durations, errors and retries (`BackendMetrics`); called once, before the
    /// first connection is made. The default records nothing.
    func attachMetrics(_ metrics: BackendMetrics)
}

extension StoreBackend {
    public var reportsAsFirestore: Bool { false }
}

/// One backend connection. Its methods are called from one thread at a time (its worker's).
///
/// Items and queries arrive validated and normalized by ``MemoryService``: ids are set, timestamps are in
/// microseconds, `content_hash` is set. Every read hides items whose expiration is at or before
/// `context.now`.
public protocol StoreConnection: AnyObject {
    /// Stores an item. Throws `DuplicateError` when the id exists and `upsert` is false.
    func addMemoryItem(_ item: MemoryItem, upsert: Bool, context: CallContext) throws(MemoryError)
    /// Stores many items; one result per item, in order. Batches by the backend's batch size.
    func addMemoryItems(_ items: [MemoryItem], upsert: Bool, context: CallContext) throws(MemoryError) -> [MemoryError?]
    func getMemoryItem(id: String, context: CallContext) throws(MemoryError) -> MemoryItem
    /// Throws `NotFoundError` when no (unexpired) item has this id.
    func deleteMemoryItem(id: String, context: CallContext) throws(MemoryError)
    /// Newest first by timestamp, then id descending.
    func conversationHistory(_ query: HistoryQuery, context: CallContext) throws(MemoryError) -> Page<MemoryItem>
    /// Exact top-k, best first.
    func semanticSearch(_ query: SearchQuery, context: CallContext) throws(MemoryError) -> [ScoredItem]
    /// The id of an unexpired item of this user with this content hash, if any.
    func findByContentHash(userID: String, contentHash: String, context: CallContext) throws(MemoryError) -> String?
    /// Throws `DuplicateError` when the id exists.
    func addAgentData(_ data: AgentData, context: CallContext) throws(MemoryError)
    func getAgentData(id: String, context: CallContext) throws(MemoryError) -> AgentData
    func listAgentData(_ query: AgentDataQuery, context: CallContext) throws(MemoryError) -> Page<AgentData>
    /// Deletes items and agent data whose expiration has passed; returns how many.
    func cleanupExpired(context: CallContext) throws(MemoryError) -> UInt64
    /// A cheap probe of the backend. Never throws: failures are reported as unhealthy.
    func health(context: CallContext) -> BackendHealth
    func close()
}

/// Scores for the three measures; higher is better for all of them (SPEC §5).
public enum Scoring {
    public static func score(_ a: [Float], _ b: [Float], measure: DistanceMeasure) -> Double {
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in score(pa, pb, measure: measure) }
        }
    }

    public static func score(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>, measure: DistanceMeasure)
        -> Double
    {
        let n = min(a.count, b.count)
        switch measure {
        case .dotProduct:
            var s: Double = 0
            for i in 0..<n { s += Double(a[i]) * Double(b[i]) }
            return s
        case .cosine:
            var dot: Double = 0, na: Double = 0, nb: Double = 0
            for i in 0..<n {
                let x = Double(a[i]), y = Double(b[i])
                dot += x * y
                na += x * x
                nb += y * y
            }
            guard na > 0, nb > 0 else { return 0 }
            return dot / (na.squareRoot() * nb.squareRoot())
        case .euclidean:
            var s: Double = 0
            for i in 0..<n {
                let d = Double(a[i]) - Double(b[i])
                s += d * d
            }
            return -s.squareRoot()
        }
    }
}
