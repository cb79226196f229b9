import MemoryDomain
import MemoryUtilities

/// The exact number of bytes protobuf-c packs a listed item into, computed without building it, so that an
/// answer can stop growing before it passes `max_frame_bytes` (``ResponseBudget``). Mirrors what ``Arena``
/// builds (Values.swift): proto3 fields equal to zero or empty are left out, except inside a `oneof`
/// (google.protobuf.Value) where they are sent. `WireSizeTests` holds it to protobuf-c's own packing.
public enum WireSize {
    /// The bytes of one element of a repeated message field (tag, length, message): an entry of
    /// GetConversationHistoryResponse.items, ListAgentDataResponse.items, SemanticSearchResponse.results.
    public static func listEntry(_ item: MemoryItem) -> Int { nested(memoryItem(item)) }
    public static func listEntry(_ data: AgentData) -> Int { nested(agentData(data)) }
    public static func listEntry(_ scored: ScoredItem) -> Int {
        nested(nested(memoryItem(scored.item)) + (scored.score == 0 ? 0 : 9))
    }

    /// The ResponseBudget of answers that must fit in `maxFrameBytes` (the Frame around a Response around the
    /// payload, and a page token, take the rest).
    public static func budget(maxFrameBytes: Int, maxItemBytes: Int) -> ResponseBudget {
        ResponseBudget(
            bytes: max(0, maxFrameBytes - reservedBytes), maxItemBytes: maxItemBytes,
            memoryItemBytes: { listEntry($0) }, agentDataBytes: { listEntry($0) }, scoredItemBytes: { listEntry($0) })
    }

    /// What an answer holds besides its items: Frame and Response headers (23 bytes at most) and a
    /// next_page_token (at most 375 bytes for a 256-byte id), rounded up.
    static let reservedBytes = 512

    static func memoryItem(_ m: MemoryItem) -> Int {
        string(m.id) + string(m.userID) + string(m.sessionID) + timestamp(m.timestamp) + string(m.itemType)
            + string(m.personaActive) + string(m.textContent) + floats(m.embedding.count)
            + (m.metadata.isEmpty ? 0 : nested(structure(m.metadata))) + timestamp(m.expiration)
    }

    static func agentData(_ d: AgentData) -> Int {
        string(d.id) + string(d.agentID) + timestamp(d.timestamp) + string(d.dataType)
            + (d.content.map { nested(value($0)) } ?? 0) + (d.metadata.isEmpty ? 0 : nested(structure(d.metadata)))
            + timestamp(d.expiration)
    }

    // MARK: - Pieces

    static func varint(_ v: UInt64) -> Int {
        var n = 1
        var v = v >> 7
        while v != 0 {
            n += 1
            v >>= 7
        }
        return n
    }

    /// A length-delimited field (tag of a field number below 16, length, body).
    static func nested(_ length: Int) -> Int { 1 + varint(UInt64(length)) + length }

    /// A proto3 string field: left out when empty.
    static func string(_ s: String) -> Int { s.isEmpty ? 0 : nested(s.utf8.count) }

    /// A packed repeated float field: left out when empty.
    static func floats(_ count: Int) -> Int { count == 0 ? 0 : nested(4 * count) }

    /// A proto3 int64/int32 field: left out when zero; negative values take ten bytes.
    static func signed(_ v: Int64) -> Int { v == 0 ? 0 : 1 + (v < 0 ? 10 : varint(UInt64(v))) }

    static func timestamp(_ t: Timestamp?) -> Int {
        guard let t else { return 0 }
        return nested(signed(t.seconds) + signed(Int64(t.nanos)))
    }

    static func structure(_ fields: [String: JSONValue]) -> Int {
        var n = 0
        for (key, v) in fields { n += nested(string(key) + nested(value(v))) }
        return n
    }

    /// google.protobuf.Value: one `oneof` member, sent even when zero or empty.
    static func value(_ v: JSONValue) -> Int {
        switch v {
        case .null, .bool: return 2
        case .number: return 9
        case .string(let s): return nested(s.utf8.count)
        case .object(let o): return nested(structure(o))
        case .array(let a):
            var n = 0
            for e in a { n += nested(value(e)) }
            return nested(n)
        }
    }
}
