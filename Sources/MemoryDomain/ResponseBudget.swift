import MemoryUtilities

/// How large an answer may grow, and how large each listed thing is on the wire (the wire layer knows:
/// `MemoryWire.WireSize`). ``MemoryService`` builds listings page by page with it and stops adding items
/// before an answer would pass `max_frame_bytes`, instead of building the whole answer first and refusing it.
public struct ResponseBudget: Sendable {
    /// Bytes the listed items of one answer may take together.
    public var bytes: Int
    /// The largest item the store may hold (``Limits/maxItemBytes``): bounds the first read of a listing.
    public var maxItemBytes: Int
    public var memoryItemBytes: @Sendable (MemoryItem) -> Int
    public var agentDataBytes: @Sendable (AgentData) -> Int
    public var scoredItemBytes: @Sendable (ScoredItem) -> Int

    public init(
        bytes: Int, maxItemBytes: Int, memoryItemBytes: @escaping @Sendable (MemoryItem) -> Int,
        agentDataBytes: @escaping @Sendable (AgentData) -> Int, scoredItemBytes: @escaping @Sendable (ScoredItem) -> Int
    ) {
        self.bytes = bytes
        self.maxItemBytes = maxItemBytes
        self.memoryItemBytes = memoryItemBytes
        self.agentDataBytes = agentDataBytes
        self.scoredItemBytes = scoredItemBytes
    }

    /// Items asked of the store in a listing's first read: 20 (the default page), or as many items of the
    /// largest size as four answers could hold, so that a read never holds much more than an answer.
    var firstRead: Int { max(20, 4 * bytes / max(1, maxItemBytes)) }
}

/// Something listed newest first by (timestamp, id): a page token resumes right after it.
public protocol KeysetPaged {
    /// Where a listing resumes after this element (the backends' keyset cursors are built the same way).
    var pageCursor: PageCursor { get }
}

extension MemoryItem: KeysetPaged {
    public var pageCursor: PageCursor { PageCursor(timestamp: timestamp ?? Timestamp(seconds: 0), id: id) }
}

extension AgentData: KeysetPaged {
    public var pageCursor: PageCursor { PageCursor(timestamp: timestamp ?? Timestamp(seconds: 0), id: id) }
}
