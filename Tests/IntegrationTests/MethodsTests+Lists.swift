import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import XCTest

/// ListMemoryItems, ListAgentData with all_agents and exclude_embeddings, on each backend.
extension MethodsTests {
    func testListMemoryItemsOldestFirstWithFiltersAndPaging() throws {
        try eachBackend(checkListMemoryItemsOldestFirstWithFiltersAndPaging)
    }
    func testListAgentDataOfAllAgents() throws { try eachBackend(checkListAgentDataOfAllAgents) }
    func testExcludeEmbeddingsInHistorySearchAndLists() throws {
        try eachBackend(checkExcludeEmbeddingsInHistorySearchAndLists)
    }

    private func checkListMemoryItemsOldestFirstWithFiltersAndPaging() throws {
        var rng = SeededRandom(7)
        let base = Timestamp.now().adding(seconds: -1000).truncatedToMicroseconds
        var live: [MemoryItem] = []
        var all: [MemoryItem] = []
        for i in 0..<14 {
            let expired = i % 5 == 2
            var it = MemoryItem(
                id: String(format: "mem_list_%02d", i), userID: i % 3 == 0 ? "u2" : "u1", sessionID: "s",
                timestamp: base.adding(seconds: Double(i / 2)),  // pairs share a timestamp: ordered by id
                itemType: i % 4 == 0 ? "note" : "conversation", textContent: "list \(i)",
                embedding: randomEmbedding(8, &rng),
                expiration: expired ? Timestamp.now().adding(seconds: -5) : nil)
            it.metadata["content_hash"] = .string(SHA256.hexDigest(it.textContent))
            all.append(it)
            if !expired { live.append(it) }
        }
        let results = try client.addMemoryItems(all.reversed())
        XCTAssertEqual(results.compactMap(\.error).count, 0, "\(backend): \(results)")

        func list(_ r: ListMemoryItemsRequest) throws -> (items: [MemoryItem], pages: Int) {
            var r = r
            var items: [MemoryItem] = []
            var pages = 0
            repeat {
                let page = try client.listMemoryItems(r)
                if !page.nextPageToken.isEmpty {
                    XCTAssertEqual(page.items.count, Int(r.limit), "[\(backend)] expired rows never shorten a page")
                }
                items += page.items
                r.pageToken = page.nextPageToken
                pages += 1
            } while !r.pageToken.isEmpty && pages < 50
            return (items, pages)
        }
        let everything = try list(ListMemoryItemsRequest(limit: 4))
        XCTAssertEqual(everything.items.map(\.id), live.map(\.id), "[\(backend)] oldest first, then by id")
        XCTAssertEqual(everything.pages, (live.count + 3) / 4)
        XCTAssertEqual(everything.items.first, live.first, "[\(backend)] whole items, embeddings included")
        XCTAssertEqual(
            try list(ListMemoryItemsRequest(userID: "u1", limit: 3)).items.map(\.id),
            live.filter { $0.userID == "u1" }.map(\.id))
        XCTAssertEqual(
            try list(ListMemoryItemsRequest(itemType: "note", limit: 100)).items.map(\.id),
            live.filter { $0.itemType == "note" }.map(\.id))
        XCTAssertEqual(
            try list(ListMemoryItemsRequest(userID: "u2", itemType: "conversation")).items.map(\.id),
            live.filter { $0.userID == "u2" && $0.itemType == "conversation" }.map(\.id))
        XCTAssertEqual(try client.listMemoryItems(ListMemoryItemsRequest(userID: "nobody")).items, [])
        XCTAssertEqual(
            try client.listMemoryItems(ListMemoryItemsRequest()).items.count, live.count, "default limit 100")

        assertThrows(.validation) { try client.listMemoryItems(ListMemoryItemsRequest(limit: 1001)) }
        assertThrows(.validation) { try client.listMemoryItems(ListMemoryItemsRequest(pageToken: "nope")) }
    }

    private func checkListAgentDataOfAllAgents() throws {
        let base = Timestamp.now().adding(seconds: -100).truncatedToMicroseconds
        var expected: [AgentData] = []
        for i in 0..<9 {
            let d = AgentData(
                id: "agent_all_\(i)", agentID: ["planner", "critic", "tool"][i % 3],
                timestamp: base.adding(seconds: Double(i)), dataType: i % 2 == 0 ? "plan" : "note",
                content: .object(["step": .number(Double(i))]),
                expiration: i == 4 ? Timestamp.now().adding(seconds: -1) : nil)
            _ = try client.addRawAgentData(d)
            if i != 4 { expected.append(d) }
        }
        expected.reverse()  // newest first
        var request = ListAgentDataRequest(agentID: "", limit: 3, allAgents: true)
        var got: [AgentData] = []
        repeat {
            let page = try client.listAgentData(request)
            got += page.items
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty && got.count < 100
        XCTAssertEqual(got.map(\.id), expected.map(\.id), "[\(backend)] every agent, newest first")
        XCTAssertEqual(got.first, expected.first)
        XCTAssertEqual(
            try client.listAgentData(ListAgentDataRequest(agentID: "", dataType: "plan", allAgents: true)).items.map(
                \.id),
            expected.filter { $0.dataType == "plan" }.map(\.id))
        XCTAssertEqual(
            try client.listAgentData(ListAgentDataRequest(agentID: "critic")).items.map(\.id),
            expected.filter { $0.agentID == "critic" }.map(\.id), "one agent as before")
        assertThrows(.validation) { try client.listAgentData(ListAgentDataRequest(agentID: "")) }
        assertThrows(.validation) {
            try client.listAgentData(ListAgentDataRequest(agentID: "critic", allAgents: true))
        }
    }

    private func checkExcludeEmbeddingsInHistorySearchAndLists() throws {
        var rng = SeededRandom(11)
        let base = Timestamp.now().adding(seconds: -50).truncatedToMicroseconds
        var items: [MemoryItem] = []
        for i in 0..<6 {
            items.append(
                MemoryItem(
                    id: "mem_emb_\(i)", userID: "ue", sessionID: "s", timestamp: base.adding(seconds: Double(i)),
                    textContent: "embedded \(i)", embedding: randomEmbedding(8, &rng),
                    metadata: ["i": .number(Double(i))]))
        }
        XCTAssertEqual(try client.addMemoryItems(items).compactMap(\.error).count, 0)

        let full = try client.conversationHistory(HistoryRequest(userID: "ue", limit: 10))
        let lean = try client.conversationHistory(HistoryRequest(userID: "ue", limit: 10, excludeEmbeddings: true))
        XCTAssertEqual(full.items.map(\.id), lean.items.map(\.id))
        XCTAssertTrue(full.items.allSatisfy { $0.embedding.count == 8 }, "[\(backend)] embeddings by default")
        XCTAssertTrue(lean.items.allSatisfy { $0.embedding.isEmpty }, "[\(backend)] no embeddings when excluded")
        for (f, l) in zip(full.items, lean.items) {
            var f = f
            f.embedding = []
            XCTAssertEqual(f, l, "[\(backend)] everything else the same")
        }

        let query = items[2].embedding
        for measure in DistanceMeasure.allCases {
            let a = try client.semanticSearch(
                SearchRequest(userID: "ue", queryEmbedding: query, topK: 3, measure: measure))
            let b = try client.semanticSearch(
                SearchRequest(userID: "ue", queryEmbedding: query, topK: 3, measure: measure, excludeEmbeddings: true))
            XCTAssertEqual(a.map(\.item.id), b.map(\.item.id), "[\(backend)] \(measure)")
            for (x, y) in zip(a, b) { XCTAssertEqual(x.score, y.score, accuracy: 1e-9) }
            XCTAssertTrue(a.allSatisfy { $0.item.embedding.count == 8 })
            XCTAssertTrue(b.allSatisfy { $0.item.embedding.isEmpty && !$0.item.textContent.isEmpty })
            XCTAssertEqual(b.first?.item.metadata["i"], a.first?.item.metadata["i"])
        }

        let listed = try client.listMemoryItems(ListMemoryItemsRequest(userID: "ue", excludeEmbeddings: true))
        XCTAssertEqual(listed.items.map(\.id), items.map(\.id))
        XCTAssertTrue(listed.items.allSatisfy { $0.embedding.isEmpty && $0.timestamp != nil })
    }
}
