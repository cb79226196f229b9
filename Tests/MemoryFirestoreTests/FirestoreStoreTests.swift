import Foundation
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import XCTest

@testable import MemoryFirestore

/// Every StoreConnection method against the real emulator.
final class FirestoreStoreTests: FirestoreTestCase {
    func testItemLifecycleAndErrors() throws {
        let backend = try makeBackend()
        let conn = try backend.makeConnection()
        defer { conn.close() }
        let ctx = context()
        let a = item(
            "mem_a", persona: "helper", embedding: [1, 2, 3, 4, 5, 6, 7, 8.5],
            metadata: [
                "n": .number(3), "x": .number(1.5), "flag": .bool(true), "none": .null,
                "list": .array([.string("a"), .number(2)]), "nested": .object(["k": .string("v")]),
            ],
            expiration: Timestamp.now().adding(seconds: 3600))
        try conn.addMemoryItem(a, upsert: false, context: ctx)
        XCTAssertEqual(try conn.getMemoryItem(id: "mem_a", context: ctx), a)

        assertError(.duplicate, try conn.addMemoryItem(a, upsert: false, context: ctx))
        var b = a
        b.textContent = "changed"
        try conn.addMemoryItem(b, upsert: true, context: ctx)
        XCTAssertEqual(try conn.getMemoryItem(id: "mem_a", context: ctx).textContent, "changed")

        assertError(.notFound, try conn.getMemoryItem(id: "mem_missing", context: ctx))
        assertError(.notFound, try conn.deleteMemoryItem(id: "mem_missing", context: ctx))
        try conn.deleteMemoryItem(id: "mem_a", context: ctx)
        assertError(.notFound, try conn.getMemoryItem(id: "mem_a", context: ctx))
        assertError(.notFound, try conn.deleteMemoryItem(id: "mem_a", context: ctx))

        // Ids with the characters ids may hold (':' and '.' included) work end to end.
        let odd = item("mem:odd.id-1_x")
        try conn.addMemoryItem(odd, upsert: false, context: ctx)
        XCTAssertEqual(try conn.getMemoryItem(id: odd.id, context: ctx), odd)
    }

    func testDocumentsHaveTheSpecShapeOverPlainREST() throws {
        let backend = try makeBackend()
        let conn = try backend.makeConnection()
        defer { conn.close() }
        let t = Timestamp(rfc3339: "2026-01-02T03:04:05.123456Z")!
        let a = item(
            "mem_shape", embedding: [0.5, -1, 2, 0, 0, 0, 0, 0.25], metadata: ["k": .string("v"), "n": .number(7)],
            at: t,
            expiration: Timestamp(rfc3339: "2099-01-01T00:00:00Z"))
        try conn.addMemoryItem(a, upsert: false, context: context())
        let (status, doc) = try emulator.getDocument(project: project, path: "\(namespace)_memory_items/mem_shape")
        XCTAssertEqual(status, 200)
        let f = try XCTUnwrap(doc?["fields"])
        XCTAssertEqual(f["user_id"]?["stringValue"], .string("u1"))
        XCTAssertEqual(f["item_type"]?["stringValue"], .string("conversation"))
        XCTAssertEqual(f["text_content"]?["stringValue"], .string("text of mem_shape"))
        XCTAssertEqual(Timestamp(rfc3339: f["timestamp"]?["timestampValue"]?.stringValue ?? ""), t)
        XCTAssertNotNil(f["expiration"]?["timestampValue"])
        let vector = try XCTUnwrap(f["embedding"]?["mapValue"]?["fields"])
        XCTAssertEqual(vector["__type__"]?["stringValue"], .string("__vector__"))
        let values = try XCTUnwrap(vector["value"]?["arrayValue"]?["values"]?.arrayValue)
        XCTAssertEqual(values.compactMap { $0["doubleValue"]?.numberValue }, [0.5, -1, 2, 0, 0, 0, 0, 0.25])
        XCTAssertEqual(f["metadata"]?["mapValue"]?["fields"]?["k"]?["stringValue"], .string("v"))
        XCTAssertEqual(f["metadata"]?["mapValue"]?["fields"]?["n"]?["integerValue"], .string("7"))
        XCTAssertNotNil(f["metadata"]?["mapValue"]?["fields"]?["content_hash"])

        // No embedding: no field.
        try conn.addMemoryItem(item("mem_plain"), upsert: false, context: context())
        let (_, plain) = try emulator.getDocument(project: project, path: "\(namespace)_memory_items/mem_plain")
        XCTAssertNil(plain?["fields"]?["embedding"])
    }

    func testHistoryPagesNewestFirstWithFiltersAndHidesExpired() throws {
        let backend = try makeBackend()
        let conn = try backend.makeConnection()
        defer { conn.close() }
        let base = Timestamp.now().adding(seconds: -1000)
        let now = Timestamp.now()
        var expected: [MemoryItem] = []
        for i in 0..<30 {
            let expired = i % 4 == 1
            let it = item(
                String(format: "mem_%02d", i), metadata: ["topic": .string(i % 2 == 0 ? "even" : "odd")],
                at: base.adding(seconds: Double(i)), expiration: expired ? now.adding(seconds: -5) : nil)
            try conn.addMemoryItem(it, upsert: false, context: context())
            if !expired { expected.append(it) }
        }
        // Same timestamp twice: ordered by id descending.
        let tie1 = item("mem_tie_a", at: base.adding(seconds: 100)),
            tie2 = item("mem_tie_b", at: base.adding(seconds: 100))
        try conn.addMemoryItem(tie1, upsert: false, context: context())
        try conn.addMemoryItem(tie2, upsert: false, context: context())
        expected += [tie1, tie2]
        // Noise: another user, another session, another type.
        try conn.addMemoryItem(item("mem_other_user", user: "u2"), upsert: false, context: context())
        try conn.addMemoryItem(item("mem_other_session", session: "s2"), upsert: false, context: context())
        try conn.addMemoryItem(item("mem_other_type", type: "note"), upsert: false, context: context())

        expected.sort { ($0.timestamp!, $0.id) > ($1.timestamp!, $1.id) }
        var got: [MemoryItem] = []
        var query = HistoryQuery(userID: "u1", sessionID: "s1", limit: 7)
        var pages = 0
        repeat {
            let page = try conn.conversationHistory(query, context: context(now: now))
            XCTAssertLessThanOrEqual(page.items.count, 7)
            if !page.nextPageToken.isEmpty {
                XCTAssertEqual(page.items.count, 7, "expired rows must not shorten a page")
            }
            got += page.items
            query.cursor = PageCursor(token: page.nextPageToken)
            pages += 1
        } while query.cursor != nil && pages < 20
        XCTAssertEqual(got.map(\.id), expected.map(\.id))
        XCTAssertEqual(pages, (expected.count + 6) / 7)

        let even = try conn.conversationHistory(
            HistoryQuery(userID: "u1", limit: 100, filters: ["metadata.topic": .string("even")]),
            context: context(now: now))
        XCTAssertEqual(
            Set(even.items.map(\.id)), Set(expected.filter { $0.metadata["topic"] == .string("even") }.map(\.id)))
        let bySession = try conn.conversationHistory(
            HistoryQuery(userID: "u1", limit: 100, filters: ["session_id": .string("s2")]),
            context: context(now: now))
        XCTAssertEqual(bySession.items.map(\.id), ["mem_other_session"])
        let notes = try conn.conversationHistory(
            HistoryQuery(userID: "u1", limit: 100, itemType: "note"), context: context(now: now))
        XCTAssertEqual(notes.items.map(\.id), ["mem_other_type"])
    }

    func testExpiredItemsAreInvisibleAndCleanupDeletesThem() throws {
        let backend = try makeBackend()
        let conn = try backend.makeConnection()
        defer { conn.close() }
        let now = Timestamp.now()
        let gone = item("mem_gone", text: "old", embedding: randomVector(8), expiration: now.adding(seconds: -1))
        let live = item("mem_live", text: "new", embedding: randomVector(8), expiration: now.adding(seconds: 3600))
        try conn.addMemoryItem(gone, upsert: false, context: context())
        try conn.addMemoryItem(live, upsert: false, context: context())
        try conn.addAgentData(
            AgentData(
                id: "agent_gone", agentID: "a", timestamp: now, dataType: "t", expiration: now.adding(seconds: -1)),
            context: context())
        let ctx = context(now: now)
        assertError(.notFound, try conn.getMemoryItem(id: "mem_gone", context: ctx))
        assertError(.notFound, try conn.deleteMemoryItem(id: "mem_gone", context: ctx))
        assertError(.notFound, try conn.getAgentData(id: "agent_gone", context: ctx))
        XCTAssertNil(try conn.findByContentHash(userID: "u1", contentHash: SHA256.hexDigest("old"), context: ctx))
        XCTAssertEqual(
            try conn.findByContentHash(userID: "u1", contentHash: SHA256.hexDigest("new"), context: ctx), "mem_live")
        XCTAssertEqual(
            try conn.conversationHistory(HistoryQuery(userID: "u1"), context: ctx).items.map(\.id), ["mem_live"])
        XCTAssertEqual(
            try conn.semanticSearch(SearchQuery(userID: "u1", embedding: gone.embedding, topK: 5), context: ctx).map(
                \.item.id),
            ["mem_live"])
        // An expired id is free again.
        var again = gone
        again.expiration = nil
        try conn.addMemoryItem(again, upsert: false, context: ctx)
        XCTAssertEqual(try conn.getMemoryItem(id: "mem_gone", context: ctx), again)
        try conn.addMemoryItem(item("mem_gone2", expiration: now.adding(seconds: -1)), upsert: false, context: ctx)

        XCTAssertEqual(try conn.cleanupExpired(context: ctx), 2)
        XCTAssertEqual(try emulator.getDocument(project: project, path: "\(namespace)_memory_items/mem_gone2").0, 404)
        XCTAssertEqual(try emulator.getDocument(project: project, path: "\(namespace)_agent_data/agent_gone").0, 404)
        XCTAssertEqual(try emulator.getDocument(project: project, path: "\(namespace)_memory_items/mem_live").0, 200)
        XCTAssertEqual(try conn.cleanupExpired(context: ctx), 0)
    }

    func testCleanupDeletesInBatches() throws {
        let backend = try makeBackend { $0.batchSize = 3 }
        let conn = try backend.makeConnection()
        defer { conn.close() }
        let now = Timestamp.now()
        let items = (0..<10).map { item("mem_x\($0)", expiration: now.adding(seconds: -10)) }
        XCTAssertEqual(try conn.addMemoryItems(items, upsert: false, context: context()).compactMap { $0 }.count, 0)
        XCTAssertEqual(try conn.cleanupExpired(context: context(now: now)), 10)
    }

    func testBatchAddGivesPerItemResults() throws {
        let backend = try makeBackend { $0.batchSize = 2 }
        let conn = try backend.makeConnection()
        defer { conn.close() }
        try conn.addMemoryItem(item("mem_exists"), upsert: false, context: context())
        let items = [item("mem_b1"), item("mem_exists", text: "other"), item("mem_b2"), item("mem_b3"), item("mem_b4")]
        let results = try conn.addMemoryItems(items, upsert: false, context: context())
        XCTAssertEqual(results.count, 5)
        XCTAssertEqual(results.map { $0?.type }, [nil, .duplicate, nil, nil, nil])
        for id in ["mem_b1", "mem_b2", "mem_b3", "mem_b4"] {
            XCTAssertEqual(try conn.getMemoryItem(id: id, context: context()).id, id)
        }
        XCTAssertEqual(try conn.getMemoryItem(id: "mem_exists", context: context()).textContent, "text of mem_exists")

        let upserted = try conn.addMemoryItems(items, upsert: true, context: context())
        XCTAssertEqual(upserted.compactMap { $0 }.count, 0)
        XCTAssertEqual(try conn.getMemoryItem(id: "mem_exists", context: context()).textContent, "other")
    }

    func testAgentData() throws {
        let backend = try makeBackend()
        let conn = try backend.makeConnection()
        defer { conn.close() }
        let base = Timestamp.now().adding(seconds: -100)
        let d = AgentData(
            id: "agent_1", agentID: "planner", timestamp: base, dataType: "plan",
            content: .object(["steps": .array([.string("a"), .number(2), .bool(false), .null]), "pi": .number(3.25)]),
            metadata: ["v": .number(1)])
        try conn.addAgentData(d, context: context())
        XCTAssertEqual(try conn.getAgentData(id: "agent_1", context: context()), d)
        assertError(.duplicate, try conn.addAgentData(d, context: context()))
        assertError(.notFound, try conn.getAgentData(id: "agent_nope", context: context()))
        let scalar = AgentData(
            id: "agent_2", agentID: "planner", timestamp: base.adding(seconds: 1), dataType: "note",
            content: .string("hi"))
        try conn.addAgentData(scalar, context: context())
        for i in 3..<8 {
            try conn.addAgentData(
                AgentData(
                    id: "agent_\(i)", agentID: "planner", timestamp: base.adding(seconds: Double(i)), dataType: "plan"),
                context: context())
        }
        try conn.addAgentData(
            AgentData(id: "agent_other", agentID: "critic", timestamp: base, dataType: "plan"), context: context())
        XCTAssertEqual(try conn.getAgentData(id: "agent_2", context: context()), scalar)

        var q = AgentDataQuery(agentID: "planner", dataType: "plan", limit: 4)
        let p1 = try conn.listAgentData(q, context: context())
        XCTAssertEqual(p1.items.map(\.id), ["agent_7", "agent_6", "agent_5", "agent_4"])
        q.cursor = PageCursor(token: p1.nextPageToken)
        let p2 = try conn.listAgentData(q, context: context())
        XCTAssertEqual(p2.items.map(\.id), ["agent_3", "agent_1"])
        XCTAssertEqual(p2.nextPageToken, "")
        XCTAssertEqual(try conn.listAgentData(AgentDataQuery(agentID: "planner"), context: context()).items.count, 7)
    }

    func testFindByContentHash() throws {
        let backend = try makeBackend()
        let conn = try backend.makeConnection()
        defer { conn.close() }
        try conn.addMemoryItem(item("mem_h1", text: "hello"), upsert: false, context: context())
        XCTAssertEqual(
            try conn.findByContentHash(userID: "u1", contentHash: SHA256.hexDigest("hello"), context: context()),
            "mem_h1")
        XCTAssertNil(
            try conn.findByContentHash(userID: "u2", contentHash: SHA256.hexDigest("hello"), context: context()))
        XCTAssertNil(
            try conn.findByContentHash(userID: "u1", contentHash: SHA256.hexDigest("other"), context: context()))
    }

    func testHealthIsHealthyWithLatency() throws {
        let backend = try makeBackend()
        let conn = try backend.makeConnection()
        defer { conn.close() }
        let h = conn.health(context: context())
        XCTAssertEqual(h.status, .healthy, h.reason)
        XCTAssertNotNil(h.details["firestore_latency_ms"]?.numberValue)
        XCTAssertEqual(h.details["firestore_error"], .string(""))
        XCTAssertEqual(h.details["circuit_state"], .string("closed"))
        XCTAssertEqual(backend.statistics()["circuit_state"], .string("closed"))
    }
}
