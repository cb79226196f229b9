import MemoryDomain
import MemoryUtilities
import MemoryWire
import XCTest

/// WireSize must agree with protobuf-c byte for byte: a listing page is cut by it.
final class WireSizeTests: XCTestCase {
    private let items: [MemoryItem] = [
        MemoryItem(),
        MemoryItem(id: "a", userID: "u"),
        MemoryItem(
            id: "mem_1", userID: "user", sessionID: "s", timestamp: Timestamp(seconds: 1_700_000_000, nanos: 123_000),
            itemType: "conversation", personaActive: "p", textContent: String(repeating: "é", count: 5000),
            embedding: (0..<768).map { Float($0) },
            metadata: [
                "": .string(""), "n": .number(0), "b": .bool(false), "z": .null, "s": .string("x"),
                "o": .object(["deep": .array([.number(1.5), .null, .object([:]), .array([])])]),
                "long": .string(String(repeating: "k", count: 300)),
            ],
            expiration: Timestamp(seconds: -5, nanos: 0)),
        MemoryItem(id: "t", userID: "u", timestamp: Timestamp(seconds: 0, nanos: 1), expiration: Timestamp(seconds: 0)),
        MemoryItem(id: "x", userID: "u", textContent: String(repeating: "a", count: 200_000)),
    ]

    func testMemoryItemsMatchProtobufC() {
        for item in items {
            let packed = PayloadCodec.encodeResponse(.getConversationHistory(Page(items: [item])))
            XCTAssertEqual(WireSize.listEntry(item), packed.count, "\(item.id)")
            for score in [0.0, -0.5, 1] {
                let scored = ScoredItem(item: item, score: score)
                XCTAssertEqual(
                    WireSize.listEntry(scored), PayloadCodec.encodeResponse(.semanticSearch([scored])).count,
                    "\(item.id) score \(score)")
            }
        }
    }

    func testAgentDataMatchesProtobufC() {
        let all: [AgentData] = [
            AgentData(),
            AgentData(id: "agent_1", agentID: "a", timestamp: Timestamp(seconds: 1, nanos: 2), dataType: "t"),
            AgentData(
                id: "d", agentID: "a", dataType: "t", content: .object(["k": .array([.string(""), .bool(true)])]),
                metadata: ["m": .number(-1)], expiration: Timestamp(seconds: 4_000_000_000)),
            AgentData(id: "n", agentID: "a", dataType: "t", content: .null),
            AgentData(id: "s", agentID: "a", dataType: "t", content: .string(String(repeating: "c", count: 70_000))),
        ]
        for d in all {
            XCTAssertEqual(
                WireSize.listEntry(d), PayloadCodec.encodeResponse(.listAgentData(Page(items: [d]))).count, d.id)
        }
    }

    func testPagesAddUp() {
        let page = Page(items: items, nextPageToken: "")
        XCTAssertEqual(
            items.map { WireSize.listEntry($0) }.reduce(0, +),
            PayloadCodec.encodeResponse(.getConversationHistory(page)).count)
    }
}
