import MemoryUtilities

/// One memory of an agent (SPEC §4).
public struct MemoryItem: Sendable, Equatable {
    public var id: String
    public var userID: String
    public var sessionID: String
    public var timestamp: Timestamp?
    public var itemType: String
    public var personaActive: String
    public var textContent: String
    public var embedding: [Float]
    public var metadata: [String: JSONValue]
    public var expiration: Timestamp?

    public init(
        id: String = "", userID: String = "", sessionID: String = "", timestamp: Timestamp? = nil,
        itemType: String = "", personaActive: String = "", textContent: String = "", embedding: [Float] = [],
        metadata: [String: JSONValue] = [:], expiration: Timestamp? = nil
    ) {
        self.id = id
        self.userID = userID
        self.sessionID = sessionID
        self.timestamp = timestamp
        self.itemType = itemType
        self.personaActive = personaActive
        self.textContent = textContent
        self.embedding = embedding
        self.metadata = metadata
        self.expiration = expiration
    }

    public static let defaultItemType = "conversation"

    /// True when the item has an expiration at or before `now`.
    public func isExpired(at now: Timestamp) -> Bool {
        if let expiration { return expiration <= now }
        return false
    }

    public var contentHash: String? { metadata["content_hash"]?.stringValue }
}

/// Raw data an agent keeps (SPEC §4).
public struct AgentData: Sendable, Equatable {
    public var id: String
    public var agentID: String
    public var timestamp: Timestamp?
    public var dataType: String
    public var content: JSONValue?
    public var metadata: [String: JSONValue]
    public var expiration: Timestamp?

    public init(
        id: String = "", agentID: String = "", timestamp: Timestamp? = nil, dataType: String = "",
        content: JSONValue? = nil, metadata: [String: JSONValue] = [:], expiration: Timestamp? = nil
    ) {
        self.id = id
        self.agentID = agentID
        self.timestamp = timestamp
        self.dataType = dataType
        self.content = content
        self.metadata = metadata
        self.expiration = expiration
    }

    public func isExpired(at now: Timestamp) -> Bool {
        if let expiration { return expiration <= now }
        return false
    }
}

public struct PersonaConfig: Sendable, Equatable {
    public var name: String
    public var description: String
    public var traits: [String: Double]
    public var promptTemplate: String
    public var metadata: [String: JSONValue]

    public init(
        name: String = "", description: String = "", traits: [String: Double] = [:], promptTemplate: String = "",
        metadata: [String: JSONValue] = [:]
    ) {
        self.name = name
        self.description = description
        self.traits = traits
        self.promptTemplate = promptTemplate
        self.metadata = metadata
    }
}

public enum DistanceMeasure: Int32, Sendable, CaseIterable {
    case cosine = 0
    case dotProduct = 1
    case euclidean = 2
}

/// A semantic search hit: higher score is better for every measure.
public struct ScoredItem: Sendable, Equatable {
    public var item: MemoryItem
    public var score: Double

    public init(item: MemoryItem, score: Double) {
        self.item = item
        self.score = score
    }
}

/// One page of a listing, with an opaque token for the next one (empty at the end).
public struct Page<Element: Sendable>: Sendable {
    public var items: [Element]
    public var nextPageToken: String
    /// Ids of stored records in this page's range that could not be read (malformed documents an older
    /// system left): left out of `items` and logged by the backend. Not sent to clients; `memoryd migrate`
    /// counts them as failed.
    public var skippedIDs: [String]

    public init(items: [Element], nextPageToken: String = "", skippedIDs: [String] = []) {
        self.items = items
        self.nextPageToken = nextPageToken
        self.skippedIDs = skippedIDs
    }
}

extension Page: Equatable where Element: Equatable {}

/// GetConversationHistory, after validation and defaults.
public struct HistoryQuery: Sendable, Equatable {
    public var userID: String
    public var sessionID: String
    public var limit: Int
    public var itemType: String
    /// Equality filters: top-level field name (`session_id`, `persona_active`, ...) or `metadata.KEY`.
    public var filters: [String: JSONValue]
    public var cursor: PageCursor?
    /// Leave the embeddings out: not read from the store, returned empty.
    public var excludeEmbeddings: Bool

    public init(
        userID: String, sessionID: String = "", limit: Int = 20, itemType: String = MemoryItem.defaultItemType,
        filters: [String: JSONValue] = [:], cursor: PageCursor? = nil, excludeEmbeddings: Bool = false
    ) {
        self.userID = userID
        self.sessionID = sessionID
        self.limit = limit
        self.itemType = itemType
        self.filters = filters
        self.cursor = cursor
        self.excludeEmbeddings = excludeEmbeddings
    }
}

/// SemanticSearch, after validation and defaults.
public struct SearchQuery: Sendable, Equatable {
    public var userID: String
    public var embedding: [Float]
    public var persona: String
    public var sessionID: String
    public var topK: Int
    public var minScore: Double?
    public var measure: DistanceMeasure
    /// Leave the embeddings of the results out: not read from the store, returned empty.
    public var excludeEmbeddings: Bool

    public init(
        userID: String, embedding: [Float], persona: String = "", sessionID: String = "", topK: Int = 5,
        minScore: Double? = nil, measure: DistanceMeasure = .cosine, excludeEmbeddings: Bool = false
    ) {
        self.userID = userID
        self.embedding = embedding
        self.persona = persona
        self.sessionID = sessionID
        self.topK = topK
        self.minScore = minScore
        self.measure = measure
        self.excludeEmbeddings = excludeEmbeddings
    }
}

/// ListMemoryItems, after validation and defaults: oldest first by timestamp, then id.
public struct ListItemsQuery: Sendable, Equatable {
    /// Empty: every user.
    public var userID: String
    /// Empty: every item type.
    public var itemType: String
    public var limit: Int
    /// Keyset cursor over (timestamp, id) ascending: the page starts after it.
    public var cursor: PageCursor?
    public var excludeEmbeddings: Bool

    public init(
        userID: String = "", itemType: String = "", limit: Int = 100, cursor: PageCursor? = nil,
        excludeEmbeddings: Bool = false
    ) {
        self.userID = userID
        self.itemType = itemType
        self.limit = limit
        self.cursor = cursor
        self.excludeEmbeddings = excludeEmbeddings
    }
}

/// ListAgentData, after validation and defaults.
public struct AgentDataQuery: Sendable, Equatable {
    /// Empty: every agent (ListAgentData with `all_agents`).
    public var agentID: String
    public var dataType: String
    public var limit: Int
    public var cursor: PageCursor?

    public init(agentID: String, dataType: String = "", limit: Int = 20, cursor: PageCursor? = nil) {
        self.agentID = agentID
        self.dataType = dataType
        self.limit = limit
        self.cursor = cursor
    }
}

/// A keyset cursor: the last (timestamp, id) of a page ordered by timestamp desc, id desc.
/// Both backends use it, so page tokens mean the same thing everywhere.
public struct PageCursor: Sendable, Equatable {
    public var timestamp: Timestamp
    public var id: String

    public init(timestamp: Timestamp, id: String) {
        self.timestamp = timestamp
        self.id = id
    }

    /// The opaque token: `v1.` + base64url of "micros:id".
    public var token: String {
        "v1." + Base64URL.encode(Array("\(timestamp.microseconds):\(id)".utf8))
    }

    public init?(token: String) {
        guard token.hasPrefix("v1."), let raw = Base64URL.decode(String(token.dropFirst(3))),
            let text = String(validating: raw, as: UTF8.self),
            let colon = text.firstIndex(of: ":"), let micros = Int64(text[..<colon])
        else { return nil }
        let id = String(text[text.index(after: colon)...])
        // A forged token may carry any instant: refuse one outside the Timestamp range (backends format it).
        let timestamp = Timestamp(microseconds: micros)
        guard Validation.isValidID(id), timestamp.isValid else { return nil }
        self.init(timestamp: timestamp, id: id)
    }
}

/// Health of the backend as the store sees it; the server adds its own figures.
public struct BackendHealth: Sendable {
    public enum Status: String, Sendable { case healthy, degraded, unhealthy }
    public var status: Status
    public var reason: String
    public var details: [String: JSONValue]

    public init(status: Status, reason: String = "", details: [String: JSONValue] = [:]) {
        self.status = status
        self.reason = reason
        self.details = details
    }
}

extension MemoryItem {
    /// True when this item is `stored` sent again: the same in every field but the timestamp, which the
    /// server sets at receipt when the client leaves it out.
    public func isResent(as stored: MemoryItem) -> Bool {
        var again = self
        again.timestamp = stored.timestamp
        return again == stored
    }
}
