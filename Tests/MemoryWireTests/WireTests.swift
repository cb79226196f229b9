import MemoryDomain
import MemoryUtilities
import MemoryWire
import XCTest

final class WireTests: XCTestCase {
    let item = MemoryItem(
        id: "mem_1", userID: "u", sessionID: "s", timestamp: Timestamp(seconds: 1_700_000_000, nanos: 5000),
        itemType: "note", personaActive: "p", textContent: "héllo", embedding: [0.5, -1, 3],
        metadata: ["a": .array([.number(1), .string("x"), .null, .bool(false)]), "m": .object(["k": .string("v")])],
        expiration: Timestamp(seconds: 1_800_000_000))

    func testEveryRequestRoundTrips() throws {
        let requests: [MethodRequest] = [
            .ping,
            .addMemoryItem(item: item, upsert: true, rejectDuplicateContent: true),
            .addMemoryItems(items: [item, MemoryItem(userID: "v")], upsert: true),
            .getMemoryItem(id: "x"), .deleteMemoryItem(id: "y"),
            .getConversationHistory(
                HistoryRequest(
                    userID: "u", sessionID: "s", limit: 7, itemType: "t",
                    filters: ["metadata.k": .string("v")], pageToken: "tok")),
            .semanticSearch(
                SearchRequest(
                    userID: "u", queryEmbedding: [1, 2], persona: "p", sessionID: "s", topK: 3, minScore: -0.5,
                    measure: .euclidean)),
            .semanticSearch(SearchRequest(userID: "u", queryEmbedding: [1, 2])),
            .checkDuplicate(item: item),
            .addRawAgentData(
                AgentData(
                    id: "agent_1", agentID: "a", timestamp: Timestamp(seconds: 1), dataType: "d",
                    content: .object(["x": .number(1)]), metadata: ["m": .bool(true)])),
            .getAgentData(id: "z"),
            .listAgentData(ListAgentDataRequest(agentID: "a", dataType: "d", limit: 9, pageToken: "t")),
            .cleanupExpiredItems, .healthCheck,
        ]
        for r in requests {
            XCTAssertEqual(try PayloadCodec.decodeRequest(r.method, PayloadCodec.encodeRequest(r)), r)
        }
    }

    func testEveryResponseRoundTrips() throws {
        let responses: [(MemoryMethod, MethodResponse)] = [
            (.ping, .ping(serverVersion: "1", uptimeMs: 5)),
            (.addMemoryItem, .addMemoryItem(id: "i")),
            (.addMemoryItems, .addMemoryItems([ItemResult(id: "a"), ItemResult(id: "b", error: .duplicate("dup"))])),
            (.getMemoryItem, .getMemoryItem(item)),
            (.deleteMemoryItem, .deleteMemoryItem),
            (.getConversationHistory, .getConversationHistory(Page(items: [item, item], nextPageToken: "n"))),
            (.semanticSearch, .semanticSearch([ScoredItem(item: item, score: 0.25)])),
            (.checkDuplicate, .checkDuplicate(duplicate: true, existingID: "e")),
            (.addRawAgentData, .addRawAgentData(id: "agent_x")),
            (.getAgentData, .getAgentData(AgentData(id: "a", agentID: "b", dataType: "c", content: .string("s")))),
            (
                .listAgentData,
                .listAgentData(Page(items: [AgentData(id: "a", agentID: "b", dataType: "c")], nextPageToken: ""))
            ),
            (.cleanupExpiredItems, .cleanupExpiredItems(deletedCount: 12)),
            (
                .healthCheck,
                .healthCheck(HealthReport(status: "degraded", firestore: true, details: ["reason": .string("r")]))
            ),
        ]
        for (m, r) in responses {
            XCTAssertEqual(try PayloadCodec.decodeResponse(m, PayloadCodec.encodeResponse(r)), r)
        }
    }

    func testFramesRoundTripWithLengthPrefix() throws {
        let frames: [Frame] = [
            .request(
                RequestFrame(
                    id: 1, method: MemoryMethod.ping.path, timeoutMs: 5, metadata: ["k": "v"], payload: [1, 2])),
            .response(ResponseFrame(id: 2, error: nil, payload: [3])),
            .response(
                ResponseFrame(
                    id: 3, error: MemoryError(.operation, "boom", operation: "firestore.commit", details: ["x": "y"]))),
            .cancel(id: 4),
            .goAway(GoAwayFrame(code: .unavailable, message: "bye", lastRequestID: 9)),
        ]
        for f in frames {
            let bytes = FrameCodec.encode(f)
            let n = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
            XCTAssertEqual(n, bytes.count - 4)
            XCTAssertEqual(try FrameCodec.decode(Array(bytes[4...])), f)
        }
    }

    func testInvalidUTF8AndGarbageAreRejected() {
        // GetMemoryItemRequest{id: 0xff 0xfe}
        XCTAssertThrowsError(try PayloadCodec.decodeRequest(.getMemoryItem, [0x0a, 0x02, 0xff, 0xfe])) { e in
            XCTAssertEqual((e as? MemoryError)?.type, .validation)
        }
        XCTAssertThrowsError(try PayloadCodec.decodeRequest(.getMemoryItem, [0x0a, 0x05, 0x41]))
        XCTAssertThrowsError(try FrameCodec.decode([0xde, 0xad, 0xbe, 0xef]))
        XCTAssertThrowsError(try FrameCodec.decode([])) { XCTAssertEqual($0 as? FrameCodec.DecodeError, .emptyFrame) }
    }
}
