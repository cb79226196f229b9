import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import MemoryWire
import XCTest

/// Every method over a real socket to a real daemon, the happy path and each error type — once per backend
/// (sqlite, and Firestore on the real emulator), so the backends cannot drift apart.
final class MethodsTests: XCTestCase {
    var daemon: DaemonProcess!
    var client: MemoryClient!
    var backend = ""
    /// When the test started the current daemon (its uptime cannot be longer).
    var daemonStarted = Date()

    /// Runs `check` against a fresh daemon on each selected backend (with `env` added to its environment).
    func eachBackend(
        env: [String: String] = [:], _ check: () throws -> Void, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        for b in Backends.selected {
            backend = b
            daemonStarted = Date()
            daemon = try startDaemon(env, backend: b)
            client = try daemon.client()
            defer {
                client.close()
                XCTAssertEqual(daemon.stop(), 0, "[\(b)] memoryd should exit 0 on SIGTERM", file: file, line: line)
                daemon.removeDirectory()
            }
            print("-- backend \(b)")  // assertion failures below this line belong to this backend
            do { try check() } catch { XCTFail("[\(b)] \(error)", file: file, line: line) }
        }
    }

    func testPingReportsVersionAndUptime() throws { try eachBackend(checkPingReportsVersionAndUptime) }
    func testAddGetDeleteRoundTrip() throws { try eachBackend(checkAddGetDeleteRoundTrip) }
    func testDuplicateIDAndUpsert() throws { try eachBackend(checkDuplicateIDAndUpsert) }
    func testRejectDuplicateContentAndCheckDuplicate() throws {
        try eachBackend(checkRejectDuplicateContentAndCheckDuplicate)
    }
    func testValidationErrorsNameTheField() throws { try eachBackend(checkValidationErrorsNameTheField) }
    func testBatchAddGivesPerItemResultsInOrder() throws { try eachBackend(checkBatchAddGivesPerItemResultsInOrder) }
    func testHistoryNewestFirstWithFiltersAndPaging() throws {
        try eachBackend(checkHistoryNewestFirstWithFiltersAndPaging)
    }
    func testExpiredItemsAreInvisibleAndCleanedUp() throws {
        try eachBackend(checkExpiredItemsAreInvisibleAndCleanedUp)
    }
    func testSemanticSearchMeasuresAndFilters() throws { try eachBackend(checkSemanticSearchMeasuresAndFilters) }
    func testAgentData() throws { try eachBackend(checkAgentData) }
    func testHealthCheckReportsDetails() throws { try eachBackend(checkHealthCheckReportsDetails) }
    func testUnknownMethodIsUnimplemented() throws { try eachBackend(checkUnknownMethodIsUnimplemented) }
    func testUndecodablePayloadIsValidationError() throws { try eachBackend(checkUndecodablePayloadIsValidationError) }
    func testLargeAnswersComePageByPage() throws {
        try eachBackend(
            env: ["MEMORYD_MAX_FRAME_BYTES": "65536", "MEMORYD_MAX_OUTPUT_BYTES": "1048576"],
            checkLargeAnswersComePageByPage)
    }

    private func checkPingReportsVersionAndUptime() throws {
        let before = try client.ping().uptimeMs
        let (version, uptime) = try client.ping()
        XCTAssertFalse(version.isEmpty)
        XCTAssertGreaterThanOrEqual(uptime, before, "uptime does not go backwards")
        XCTAssertLessThanOrEqual(
            uptime, UInt64(Date().timeIntervalSince(daemonStarted) * 1000) + 1,
            "no longer than since the test started it")
    }

    private func checkAddGetDeleteRoundTrip() throws {
        let item = MemoryItem(
            userID: "u1", sessionID: "s1", personaActive: "helper", textContent: "hello world",
            embedding: [1, 2, 3, 4, 5, 6, 7, 8], metadata: ["topic": .string("greeting"), "n": .number(3)])
        let sent = Timestamp.now().truncatedToMicroseconds
        let id = try client.addMemoryItem(item)
        let answered = Timestamp.now()
        XCTAssertTrue(id.hasPrefix("mem_"), id)
        let got = try client.getMemoryItem(id)
        XCTAssertEqual(got.id, id)
        XCTAssertEqual(got.userID, "u1")
        XCTAssertEqual(got.sessionID, "s1")
        XCTAssertEqual(got.itemType, "conversation", "item_type defaults to conversation")
        XCTAssertEqual(got.textContent, "hello world")
        XCTAssertEqual(got.embedding, [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(got.metadata["topic"], .string("greeting"))
        XCTAssertEqual(got.metadata["n"], .number(3))
        XCTAssertEqual(got.metadata["content_hash"], .string(SHA256.hexDigest("hello world")))
        XCTAssertEqual(
            SHA256.hexDigest("hello world"), "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")
        let ts = try XCTUnwrap(got.timestamp)
        XCTAssertTrue(sent <= ts && ts <= answered, "timestamp defaults to receive time: \(sent) ≤ \(ts) ≤ \(answered)")

        try client.deleteMemoryItem(id)
        assertThrows(.notFound) { try client.getMemoryItem(id) }
        assertThrows(.notFound) { try client.deleteMemoryItem(id) }
    }

    private func checkDuplicateIDAndUpsert() throws {
        let item = MemoryItem(id: "fixed-1", userID: "u1", textContent: "one")
        XCTAssertEqual(try client.addMemoryItem(item), "fixed-1")
        var changed = item
        changed.textContent = "two"
        // The same item again is a retry: it succeeds and changes nothing, on every backend; in a batch it says so.
        XCTAssertEqual(try client.addMemoryItem(item), "fixed-1")
        let again = try client.addMemoryItems([item])
        XCTAssertNil(again.first?.error)
        XCTAssertEqual(again.first?.unchanged, true)
        XCTAssertEqual(try client.addMemoryItems([MemoryItem(id: "fixed-2", userID: "u1")]).first?.unchanged, false)
        // A different item under a taken id is a duplicate.
        assertThrows(.duplicate) { try client.addMemoryItem(changed) }
        XCTAssertEqual(try client.addMemoryItem(changed, upsert: true), "fixed-1")
        XCTAssertEqual(try client.getMemoryItem("fixed-1").textContent, "two")
    }

    private func checkRejectDuplicateContentAndCheckDuplicate() throws {
        let first = try client.addMemoryItem(MemoryItem(userID: "u1", textContent: "same words"))
        let e = assertThrows(.duplicate) {
            try client.addMemoryItem(MemoryItem(userID: "u1", textContent: "same words"), rejectDuplicateContent: true)
        }
        XCTAssertEqual(e?.details["existing_id"], first)
        // Another user may say the same thing.
        XCTAssertNoThrow(
            try client.addMemoryItem(MemoryItem(userID: "u2", textContent: "same words"), rejectDuplicateContent: true))
        let dup = try client.checkDuplicate(MemoryItem(userID: "u1", textContent: "same words"))
        XCTAssertTrue(dup.duplicate)
        XCTAssertEqual(dup.existingID, first)
        XCTAssertFalse(try client.checkDuplicate(MemoryItem(userID: "u1", textContent: "new words")).duplicate)
        // An empty text is nobody's duplicate, as in the original manager (items without text are common:
        // tool results, embeddings only).
        _ = try client.addMemoryItem(MemoryItem(userID: "u1", textContent: ""))
        XCTAssertFalse(try client.checkDuplicate(MemoryItem(userID: "u1", textContent: "")).duplicate)
        XCTAssertNoThrow(
            try client.addMemoryItem(MemoryItem(userID: "u1", textContent: ""), rejectDuplicateContent: true))
    }

    private func checkValidationErrorsNameTheField() throws {
        var e = assertThrows(.validation) { try client.addMemoryItem(MemoryItem(textContent: "no user")) }
        XCTAssertTrue(e?.message.contains("user_id") ?? false, e?.message ?? "")
        e = assertThrows(.validation) { try client.addMemoryItem(MemoryItem(userID: "u", embedding: [1, 2, 3])) }
        XCTAssertTrue(e?.message.contains("3 values; expected 8") ?? false, e?.message ?? "")
        e = assertThrows(.validation) {
            try client.addMemoryItem(MemoryItem(userID: "u", embedding: [1, 2, 3, 4, 5, 6, 7, .nan]))
        }
        XCTAssertTrue(e?.message.contains("finite") ?? false, e?.message ?? "")
        e = assertThrows(.validation) { try client.addMemoryItem(MemoryItem(id: "../etc/passwd", userID: "u")) }
        XCTAssertTrue(e?.message.contains("not a valid id") ?? false, e?.message ?? "")
        assertThrows(.validation) {
            try client.addMemoryItem(MemoryItem(id: String(repeating: "a", count: 257), userID: "u"))
        }
        assertThrows(.validation) {
            try client.addMemoryItem(
                MemoryItem(userID: "u", textContent: String(repeating: "x", count: 512 * 1024 + 1)))
        }
        assertThrows(.validation) { try client.getMemoryItem("bad/id") }
        e = assertThrows(.validation) {
            try client.addMemoryItem(MemoryItem(userID: "u", textContent: "before\u{0}after"))
        }
        XCTAssertTrue(e?.message.contains("item.text_content contains a NUL byte") ?? false, e?.message ?? "")
        assertThrows(.validation) { try client.conversationHistory(HistoryRequest(userID: "")) }
        assertThrows(.validation) { try client.conversationHistory(HistoryRequest(userID: "u", limit: 1001)) }
        assertThrows(.validation) {
            try client.conversationHistory(HistoryRequest(userID: "u", filters: ["nope": .string("x")]))
        }
        assertThrows(.validation) { try client.conversationHistory(HistoryRequest(userID: "u", pageToken: "garbage")) }
        assertThrows(.validation) { try client.semanticSearch(SearchRequest(userID: "u", queryEmbedding: [])) }
        assertThrows(.validation) {
            try client.semanticSearch(
                SearchRequest(userID: "u", queryEmbedding: [Float](repeating: 1, count: 8), topK: 1001))
        }
        assertThrows(.validation) { try client.addRawAgentData(AgentData(agentID: "a")) }
        assertThrows(.validation) { try client.listAgentData(ListAgentDataRequest(agentID: "")) }
        // Nothing was stored by any of these.
        XCTAssertEqual(try client.conversationHistory(HistoryRequest(userID: "u")).items.count, 0)
    }

    private func checkBatchAddGivesPerItemResultsInOrder() throws {
        _ = try client.addMemoryItem(MemoryItem(id: "exists", userID: "u"))
        let results = try client.addMemoryItems([
            MemoryItem(id: "b1", userID: "u", textContent: "first"),
            MemoryItem(id: "exists", userID: "u", textContent: "not what is stored"),
            MemoryItem(userID: "", textContent: "no user"),
            MemoryItem(id: "b2", userID: "u", textContent: "second"),
            MemoryItem(userID: "u", textContent: "generated id"),
        ])
        XCTAssertEqual(results.count, 5)
        XCTAssertEqual(results[0].id, "b1")
        XCTAssertNil(results[0].error)
        XCTAssertEqual(results[1].error?.type, .duplicate)
        XCTAssertEqual(results[2].error?.type, .validation)
        XCTAssertNil(results[3].error)
        XCTAssertNil(results[4].error)
        XCTAssertTrue(results[4].id.hasPrefix("mem_"))
        XCTAssertEqual(try client.getMemoryItem("b2").textContent, "second")
        XCTAssertEqual(try client.getMemoryItem(results[4].id).textContent, "generated id")
    }

    private func checkHistoryNewestFirstWithFiltersAndPaging() throws {
        let base = Timestamp.now().seconds - 1000
        var items: [MemoryItem] = []
        for i in 0..<45 {
            items.append(
                MemoryItem(
                    id: "h\(i)", userID: "u", sessionID: i % 2 == 0 ? "even" : "odd",
                    timestamp: Timestamp(seconds: base + Int64(i)), textContent: "msg \(i)",
                    metadata: ["parity": .string(i % 2 == 0 ? "even" : "odd"), "i": .number(Double(i))]))
        }
        items.append(MemoryItem(id: "note", userID: "u", timestamp: Timestamp(seconds: base + 100), itemType: "note"))
        items.append(MemoryItem(id: "other-user", userID: "v", timestamp: Timestamp(seconds: base + 100)))
        XCTAssertTrue(try client.addMemoryItems(items).allSatisfy { $0.error == nil })

        let first = try client.conversationHistory(HistoryRequest(userID: "u"))
        XCTAssertEqual(first.items.map(\.id), (25..<45).reversed().map { "h\($0)" }, "default limit 20, newest first")
        var seen: [String] = []
        var token = ""
        repeat {
            let page = try client.conversationHistory(HistoryRequest(userID: "u", limit: 20, pageToken: token))
            seen += page.items.map(\.id)
            token = page.nextPageToken
        } while !token.isEmpty
        XCTAssertEqual(seen, (0..<45).reversed().map { "h\($0)" }, "paging returns every item once, in order")

        let odd = try client.conversationHistory(HistoryRequest(userID: "u", sessionID: "odd", limit: 100))
        XCTAssertEqual(odd.items.count, 22)
        let meta = try client.conversationHistory(
            HistoryRequest(
                userID: "u", limit: 100, filters: ["metadata.parity": .string("even"), "metadata.i": .number(4)]))
        XCTAssertEqual(meta.items.map(\.id), ["h4"])
        let notes = try client.conversationHistory(HistoryRequest(userID: "u", itemType: "note"))
        XCTAssertEqual(notes.items.map(\.id), ["note"])
    }

    private func checkExpiredItemsAreInvisibleAndCleanedUp() throws {
        let past = Timestamp.now().adding(seconds: -5)
        let future = Timestamp.now().adding(seconds: 3600)
        let old = try client.addMemoryItem(
            MemoryItem(userID: "u", textContent: "old", embedding: [Float](repeating: 1, count: 8), expiration: past))
        let live = try client.addMemoryItem(
            MemoryItem(userID: "u", textContent: "live", embedding: [Float](repeating: 1, count: 8), expiration: future)
        )
        _ = try client.addRawAgentData(AgentData(agentID: "a", dataType: "t", content: .string("x"), expiration: past))
        assertThrows(.notFound) { try client.getMemoryItem(old) }
        XCTAssertEqual(try client.conversationHistory(HistoryRequest(userID: "u")).items.map(\.id), [live])
        XCTAssertEqual(
            try client.semanticSearch(SearchRequest(userID: "u", queryEmbedding: [Float](repeating: 1, count: 8))).map(
                \.item.id), [live])
        XCTAssertFalse(try client.checkDuplicate(MemoryItem(userID: "u", textContent: "old")).duplicate)
        XCTAssertEqual(try client.cleanupExpiredItems(), 2)
        XCTAssertEqual(try client.cleanupExpiredItems(), 0)
        XCTAssertEqual(try client.getMemoryItem(live).textContent, "live")
    }

    private func checkSemanticSearchMeasuresAndFilters() throws {
        let items: [MemoryItem] = [
            MemoryItem(id: "x", userID: "u", personaActive: "p1", embedding: [1, 0, 0, 0, 0, 0, 0, 0]),
            MemoryItem(id: "y", userID: "u", personaActive: "p2", embedding: [0, 1, 0, 0, 0, 0, 0, 0]),
            MemoryItem(id: "xy", userID: "u", personaActive: "p1", embedding: [2, 2, 0, 0, 0, 0, 0, 0]),
            MemoryItem(id: "other", userID: "v", embedding: [1, 0, 0, 0, 0, 0, 0, 0]),
            MemoryItem(id: "noembedding", userID: "u"),
        ]
        XCTAssertTrue(try client.addMemoryItems(items).allSatisfy { $0.error == nil })
        let q: [Float] = [1, 0, 0, 0, 0, 0, 0, 0]
        let cos = try client.semanticSearch(SearchRequest(userID: "u", queryEmbedding: q))
        XCTAssertEqual(cos.map(\.item.id), ["x", "xy", "y"])
        XCTAssertEqual(cos[0].score, 1, accuracy: 1e-6)
        XCTAssertEqual(cos[1].score, 1 / 2.0.squareRoot(), accuracy: 1e-6)
        let dot = try client.semanticSearch(SearchRequest(userID: "u", queryEmbedding: q, measure: .dotProduct))
        XCTAssertEqual(dot.map(\.item.id), ["xy", "x", "y"])
        XCTAssertEqual(dot[0].score, 2, accuracy: 1e-6)
        let euc = try client.semanticSearch(SearchRequest(userID: "u", queryEmbedding: q, measure: .euclidean))
        XCTAssertEqual(euc.map(\.item.id), ["x", "y", "xy"])
        XCTAssertEqual(euc[0].score, 0, accuracy: 1e-6)
        XCTAssertEqual(euc[1].score, -2.0.squareRoot(), accuracy: 1e-6)
        let persona = try client.semanticSearch(SearchRequest(userID: "u", queryEmbedding: q, persona: "p1"))
        XCTAssertEqual(persona.map(\.item.id), ["x", "xy"])
        let top1 = try client.semanticSearch(SearchRequest(userID: "u", queryEmbedding: q, topK: 1))
        XCTAssertEqual(top1.map(\.item.id), ["x"])
        let thresholded = try client.semanticSearch(SearchRequest(userID: "u", queryEmbedding: q, minScore: 0.5))
        XCTAssertEqual(thresholded.map(\.item.id), ["x", "xy"])
        // Euclidean scores are negative: min_score still means "at least".
        let near = try client.semanticSearch(
            SearchRequest(userID: "u", queryEmbedding: q, minScore: -1.5, measure: .euclidean))
        XCTAssertEqual(near.map(\.item.id), ["x", "y"])
    }

    private func checkAgentData() throws {
        let content: JSONValue = .object([
            "plan": .array([.string("a"), .string("b")]), "score": .number(0.5), "ok": .bool(true),
        ])
        let id = try client.addRawAgentData(
            AgentData(agentID: "agent-7", dataType: "plan", content: content, metadata: ["v": .number(1)]))
        XCTAssertTrue(id.hasPrefix("agent_"), id)
        let got = try client.getAgentData(id)
        XCTAssertEqual(got.agentID, "agent-7")
        XCTAssertEqual(got.dataType, "plan")
        XCTAssertEqual(got.content, content)
        XCTAssertEqual(got.metadata["v"], .number(1))
        assertThrows(.duplicate) { try client.addRawAgentData(AgentData(id: id, agentID: "agent-7", dataType: "plan")) }
        assertThrows(.notFound) { try client.getAgentData("agent_missing") }
        for i in 0..<5 {
            _ = try client.addRawAgentData(
                AgentData(
                    agentID: "agent-7", timestamp: Timestamp(seconds: 1_700_000_000 + Int64(i)),
                    dataType: i % 2 == 0 ? "obs" : "plan", content: .number(Double(i))))
        }
        let all = try client.listAgentData(ListAgentDataRequest(agentID: "agent-7"))
        XCTAssertEqual(all.items.count, 6)
        XCTAssertEqual(all.items.first?.id, id, "newest first")
        let obs = try client.listAgentData(ListAgentDataRequest(agentID: "agent-7", dataType: "obs", limit: 2))
        XCTAssertEqual(obs.items.map(\.content), [.number(4), .number(2)])
        XCTAssertFalse(obs.nextPageToken.isEmpty)
        let rest = try client.listAgentData(
            ListAgentDataRequest(agentID: "agent-7", dataType: "obs", limit: 2, pageToken: obs.nextPageToken))
        XCTAssertEqual(rest.items.map(\.content), [.number(0)])
        XCTAssertEqual(rest.nextPageToken, "")
    }

    private func checkHealthCheckReportsDetails() throws {
        let h = try client.healthCheck()
        XCTAssertEqual(h.status, "healthy")
        XCTAssertEqual(h.firestore, backend == "firestore")
        for key in [
            "backend", "version", "uptime_s", "connection_pool_size", "connections_in_use", "queue_depth",
            "circuit_state", "error_count", "last_error", "namespace",
        ] {
            XCTAssertNotNil(h.details[key], "details.\(key) missing: \(h.details)")
        }
        XCTAssertEqual(h.details["backend"], .string(backend))
        if backend == "firestore" { XCTAssertNotNil(h.details["firestore_latency_ms"]) }
        // workers = 0: Firestore's pool size (10), sqlite's cores.
        let workers = backend == "firestore" ? 10 : Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        XCTAssertEqual(h.details["connection_pool_size"], .number(Double(workers)))
    }

    private func checkUnknownMethodIsUnimplemented() throws {
        let conn = client.connection
        try conn.send(.request(RequestFrame(id: 77, method: "/orchestra.memory.v1.MemoryService/Nope")))
        let r = try conn.waitResponse(77, timeoutMs: 10_000)
        XCTAssertEqual(r.error?.code, .unimplemented)
        XCTAssertEqual(r.error?.type, .unspecified)
        XCTAssertTrue(r.error?.message.contains("Nope") ?? false)
        // The connection is still usable.
        XCTAssertNoThrow(try client.ping())
    }

    private func checkUndecodablePayloadIsValidationError() throws {
        let conn = client.connection
        try conn.send(
            .request(RequestFrame(id: 5, method: MemoryMethod.getMemoryItem.path, payload: [0xff, 0xff, 0xff])))
        let r = try conn.waitResponse(5, timeoutMs: 10_000)
        XCTAssertEqual(r.error?.code, .invalidArgument)
        XCTAssertEqual(r.error?.type, .validation)
    }

    /// With max_frame_bytes = 64 KiB, 30 items of about 3 KiB do not fit in one answer: a history or
    /// agent-data page stops before the item that would not fit and hands back a token (PROTOCOL.md), and
    /// following the tokens gives every item once, newest first; a search that would not fit is refused early,
    /// saying how many results would.
    private func checkLargeAnswersComePageByPage() throws {
        let text = String(repeating: "y", count: 3000)
        let items = (0..<30).map { i in
            MemoryItem(
                id: "big-\(i)", userID: "u", timestamp: Timestamp(seconds: 1_700_000_000 + Int64(i)),
                textContent: "\(i) \(text)", embedding: [1, 0, 0, 0, 0, 0, 0, Float(i)])
        }
        for batch in stride(from: 0, to: 30, by: 10) {  // a request must fit in a frame too
            XCTAssertTrue(try client.addMemoryItems(Array(items[batch..<batch + 10])).allSatisfy { $0.error == nil })
        }
        var seen: [String] = []
        var token = ""
        var pages = 0
        repeat {
            let page = try client.conversationHistory(HistoryRequest(userID: "u", limit: 30, pageToken: token))
            XCTAssertFalse(page.items.isEmpty)
            XCTAssertLessThan(page.items.count, 30, "30 items of 3 KiB cannot fit in 64 KiB")
            seen += page.items.map(\.id)
            token = page.nextPageToken
            pages += 1
        } while !token.isEmpty && pages < 30
        XCTAssertEqual(seen, items.reversed().map(\.id), "every item once, newest first")
        XCTAssertGreaterThan(pages, 1)

        for i in 0..<30 {
            _ = try client.addRawAgentData(
                AgentData(
                    id: "ad-\(i)", agentID: "a", timestamp: Timestamp(seconds: 1_700_000_000 + Int64(i)),
                    dataType: "t", content: .string(text)))
        }
        var data: [String] = []
        token = ""
        pages = 0
        repeat {
            let page = try client.listAgentData(ListAgentDataRequest(agentID: "a", limit: 30, pageToken: token))
            XCTAssertLessThan(page.items.count, 30)
            data += page.items.map(\.id)
            token = page.nextPageToken
            pages += 1
        } while !token.isEmpty && pages < 30
        XCTAssertEqual(data, (0..<30).reversed().map { "ad-\($0)" })

        let query = SearchRequest(userID: "u", queryEmbedding: [1, 0, 0, 0, 0, 0, 0, 0], topK: 30)
        let e = assertThrows(.unspecified, code: .resourceExhausted) { try client.semanticSearch(query) }
        let message = e?.message ?? ""
        XCTAssertTrue(message.contains("top_k ≤ "), message)
        let fit = Int(message.split(separator: "≤ ").last ?? "") ?? 0
        XCTAssertGreaterThan(fit, 0, message)
        var smaller = query
        smaller.topK = UInt32(fit)
        XCTAssertEqual(try client.semanticSearch(smaller).count, fit, "top_k = what fits is answered")
    }
}
