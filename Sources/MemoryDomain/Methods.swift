import MemoryUtilities

/// The methods of `orchestra.memory.v1.MemoryService` (SPEC §5).
public enum MemoryMethod: String, Sendable, CaseIterable {
    case ping = "Ping"
    case addMemoryItem = "AddMemoryItem"
    case addMemoryItems = "AddMemoryItems"
    case getMemoryItem = "GetMemoryItem"
    case deleteMemoryItem = "DeleteMemoryItem"
    case getConversationHistory = "GetConversationHistory"
    case semanticSearch = "SemanticSearch"
    case checkDuplicate = "CheckDuplicate"
    case addRawAgentData = "AddRawAgentData"
    case getAgentData = "GetAgentData"
    case listAgentData = "ListAgentData"
    case cleanupExpiredItems = "CleanupExpiredItems"
    case healthCheck = "HealthCheck"
    case listMemoryItems = "ListMemoryItems"
    case getMetrics = "GetMetrics"

    public static let servicePrefix = "/orchestra.memory.v1.MemoryService/"

    /// The full name on the wire, e.g. `/orchestra.memory.v1.MemoryService/Ping`.
    public var path: String { Self.servicePrefix + rawValue }

    private static let byPath: [String: MemoryMethod] = Dictionary(uniqueKeysWithValues: allCases.map { ($0.path, $0) })

    public init?(path: String) {
        guard let m = Self.byPath[path] else { return nil }
        self = m
    }

    private static let servicePrefixBytes = Array(servicePrefix.utf8)
    private static let nameBytes: [(name: [UInt8], method: MemoryMethod)] = allCases.map {
        (Array($0.rawValue.utf8), $0)
    }

    /// The method whose path these UTF-8 bytes are, without building a String (the server's hot path).
    public init?(pathBytes p: UnsafeRawBufferPointer) {
        let prefix = Self.servicePrefixBytes
        guard p.count > prefix.count else { return nil }
        for i in 0..<prefix.count where p[i] != prefix[i] { return nil }
        let rest = p.count - prefix.count
        for (name, method) in Self.nameBytes where name.count == rest {
            var same = true
            for j in 0..<rest where name[j] != p[prefix.count + j] {
                same = false
                break
            }
            if same {
                self = method
                return
            }
        }
        return nil
    }
}

/// A decoded request of any method, with the wire's fields (before validation and defaults).
public enum MethodRequest: Sendable, Equatable {
    case ping
    case addMemoryItem(item: MemoryItem, upsert: Bool, rejectDuplicateContent: Bool)
    case addMemoryItems(items: [MemoryItem], upsert: Bool)
    case getMemoryItem(id: String)
    case deleteMemoryItem(id: String)
    case getConversationHistory(HistoryRequest)
    case semanticSearch(SearchRequest)
    case checkDuplicate(item: MemoryItem)
    case addRawAgentData(AgentData)
    case getAgentData(id: String)
    case listAgentData(ListAgentDataRequest)
    case cleanupExpiredItems
    case healthCheck
    case listMemoryItems(ListMemoryItemsRequest)
    case getMetrics

    public var method: MemoryMethod {
        switch self {
        case .ping: .ping
        case .addMemoryItem: .addMemoryItem
        case .addMemoryItems: .addMemoryItems
        case .getMemoryItem: .getMemoryItem
        case .deleteMemoryItem: .deleteMemoryItem
        case .getConversationHistory: .getConversationHistory
        case .semanticSearch: .semanticSearch
        case .checkDuplicate: .checkDuplicate
        case .addRawAgentData: .addRawAgentData
        case .getAgentData: .getAgentData
        case .listAgentData: .listAgentData
        case .cleanupExpiredItems: .cleanupExpiredItems
        case .healthCheck: .healthCheck
        case .listMemoryItems: .listMemoryItems
        case .getMetrics: .getMetrics
        }
    }
}

public struct HistoryRequest: Sendable, Equatable {
    public var userID: String
    public var sessionID: String
    public var limit: UInt32
    public var itemType: String
    public var filters: [String: JSONValue]
    public var pageToken: String
    /// Items come back with an empty embedding (less to read and send).
    public var excludeEmbeddings: Bool

    public init(
        userID: String, sessionID: String = "", limit: UInt32 = 0, itemType: String = "",
        filters: [String: JSONValue] = [:], pageToken: String = "", excludeEmbeddings: Bool = false
    ) {
        self.userID = userID
        self.sessionID = sessionID
        self.limit = limit
        self.itemType = itemType
        self.filters = filters
        self.pageToken = pageToken
        self.excludeEmbeddings = excludeEmbeddings
    }
}

public struct SearchRequest: Sendable, Equatable {
    public var userID: String
    public var queryEmbedding: [Float]
    public var persona: String
    public var sessionID: String
    public var topK: UInt32
    public var minScore: Double?
    public var measure: Int32
    /// Results come back with an empty embedding (less to read and send).
    public var excludeEmbeddings: Bool

    public init(
        userID: String, queryEmbedding: [Float], persona: String = "", sessionID: String = "", topK: UInt32 = 0,
        minScore: Double? = nil, measure: DistanceMeasure = .cosine, excludeEmbeddings: Bool = false
    ) {
        self.userID = userID
        self.queryEmbedding = queryEmbedding
        self.persona = persona
        self.sessionID = sessionID
        self.topK = topK
        self.minScore = minScore
        self.measure = measure.rawValue
        self.excludeEmbeddings = excludeEmbeddings
    }
}

public struct ListAgentDataRequest: Sendable, Equatable {
    public var agentID: String
    public var dataType: String
    public var limit: UInt32
    public var pageToken: String
    /// With an empty `agentID`: every agent's data (export).
    public var allAgents: Bool

    public init(
        agentID: String, dataType: String = "", limit: UInt32 = 0, pageToken: String = "", allAgents: Bool = false
    ) {
        self.agentID = agentID
        self.dataType = dataType
        self.limit = limit
        self.pageToken = pageToken
        self.allAgents = allAgents
    }
}

/// ListMemoryItems: every memory item of the namespace (or of one user, of one type), oldest first.
public struct ListMemoryItemsRequest: Sendable, Equatable {
    /// Empty: every user.
    public var userID: String
    /// Empty: every item type.
    public var itemType: String
    public var limit: UInt32
    public var pageToken: String
    public var excludeEmbeddings: Bool

    public init(
        userID: String = "", itemType: String = "", limit: UInt32 = 0, pageToken: String = "",
        excludeEmbeddings: Bool = false
    ) {
        self.userID = userID
        self.itemType = itemType
        self.limit = limit
        self.pageToken = pageToken
        self.excludeEmbeddings = excludeEmbeddings
    }
}

/// The result of one item of AddMemoryItems.
public struct ItemResult: Sendable, Equatable {
    public var id: String
    public var error: MemoryError?
    /// Stored already, exactly so (the item was sent again): nothing changed. The wire carries it as an OK
    /// status with `details.unchanged = "true"`.
    public var unchanged: Bool

    public init(id: String, error: MemoryError? = nil, unchanged: Bool = false) {
        self.id = id
        self.error = error
        self.unchanged = unchanged
    }
}

public struct HealthReport: Sendable, Equatable {
    public var status: String
    public var firestore: Bool
    public var details: [String: JSONValue]

    public init(status: String, firestore: Bool, details: [String: JSONValue]) {
        self.status = status
        self.firestore = firestore
        self.details = details
    }

    /// `{"status": ..., "firestore": ..., "details": {...}}`, the form of `memoryctl health --json`.
    public var json: JSONValue {
        .object(["status": .string(status), "firestore": .bool(firestore), "details": .object(details)])
    }
}

/// A successful result of any method.
public enum MethodResponse: Sendable, Equatable {
    case ping(serverVersion: String, uptimeMs: UInt64)
    case addMemoryItem(id: String)
    case addMemoryItems([ItemResult])
    case getMemoryItem(MemoryItem)
    case deleteMemoryItem
    case getConversationHistory(Page<MemoryItem>)
    case semanticSearch([ScoredItem])
    case checkDuplicate(duplicate: Bool, existingID: String)
    case addRawAgentData(id: String)
    case getAgentData(AgentData)
    case listAgentData(Page<AgentData>)
    case cleanupExpiredItems(deletedCount: UInt64)
    case healthCheck(HealthReport)
    case listMemoryItems(Page<MemoryItem>)
    /// The Prometheus text exposition (format 0.0.4).
    case getMetrics(text: String)
}
