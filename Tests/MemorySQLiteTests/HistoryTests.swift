import MemoryDomain
import MemoryUtilities
import XCTest

@testable import MemorySQLite

final class HistoryTests: SQLiteTestCase {
    func testNewestFirstThenIDDescending() throws {
        let base: Int64 = 1_700_000_000
        try connection.addMemoryItem(item("a", at: base), upsert: false, context: context)
        try connection.addMemoryItem(item("b", at: base + 10), upsert: false, context: context)
        try connection.addMemoryItem(item("c", at: base + 10), upsert: false, context: context)
        try connection.addMemoryItem(item("d", at: base + 5), upsert: false, context: context)
        let page = try connection.conversationHistory(HistoryQuery(userID: "u1"), context: context)
        XCTAssertEqual(page.items.map(\.id), ["c", "b", "d", "a"])
        XCTAssertEqual(page.nextPageToken, "")
    }

    func testFiltersByUserTypeSessionAndHidesExpired() throws {
        try connection.addMemoryItem(item("a", session: "s1"), upsert: false, context: context)
        try connection.addMemoryItem(item("b", session: "s2"), upsert: false, context: context)
        try connection.addMemoryItem(item("c", user: "u2"), upsert: false, context: context)
        try connection.addMemoryItem(item("d", type: "note"), upsert: false, context: context)
        try connection.addMemoryItem(item("e", expiresIn: -1), upsert: false, context: context)
        try connection.addMemoryItem(item("f", expiresIn: 60), upsert: false, context: context)
        func ids(_ q: HistoryQuery) throws -> [String] {
            try connection.conversationHistory(q, context: context).items.map(\.id).sorted()
        }
        XCTAssertEqual(try ids(HistoryQuery(userID: "u1")), ["a", "b", "f"])
        XCTAssertEqual(try ids(HistoryQuery(userID: "u1", sessionID: "s2")), ["b"])
        XCTAssertEqual(try ids(HistoryQuery(userID: "u1", itemType: "note")), ["d"])
        XCTAssertEqual(try ids(HistoryQuery(userID: "u2")), ["c"])
        XCTAssertEqual(try ids(HistoryQuery(userID: "nobody")), [])
    }

    func testTopLevelAndMetadataFilters() throws {
        try connection.addMemoryItem(
            item("a", persona: "p1", metadata: ["kind": .string("x"), "n": .number(1), "flag": .bool(true)]),
            upsert: false, context: context)
        try connection.addMemoryItem(
            item("b", persona: "p2", metadata: ["kind": .string("y"), "n": .number(1.5), "flag": .bool(false)]),
            upsert: false, context: context)
        try connection.addMemoryItem(
            item(
                "c", persona: "p1", metadata: ["kind": .string("1"), "n": .null, "deep": .object(["k": .string("v")])]),
            upsert: false, context: context)
        func ids(_ filters: [String: JSONValue]) throws -> [String] {
            try connection.conversationHistory(HistoryQuery(userID: "u1", filters: filters), context: context).items
                .map(\.id).sorted()
        }
        XCTAssertEqual(try ids(["persona_active": .string("p1")]), ["a", "c"])
        XCTAssertEqual(try ids(["persona_active": .string("p1"), "metadata.kind": .string("x")]), ["a"])
        XCTAssertEqual(try ids(["metadata.kind": .string("1")]), ["c"])
        XCTAssertEqual(try ids(["metadata.kind": .number(1)]), [])
        XCTAssertEqual(try ids(["metadata.n": .number(1)]), ["a"])
        XCTAssertEqual(try ids(["metadata.n": .number(1.5)]), ["b"])
        XCTAssertEqual(try ids(["metadata.n": .bool(true)]), [])
        XCTAssertEqual(try ids(["metadata.flag": .bool(true)]), ["a"])
        XCTAssertEqual(try ids(["metadata.flag": .bool(false)]), ["b"])
        XCTAssertEqual(try ids(["metadata.n": .null]), ["c"])
        XCTAssertEqual(try ids(["metadata.missing": .null]), ["a", "b", "c"])
        XCTAssertEqual(try ids(["metadata.deep.k": .string("v")]), ["c"])
        XCTAssertEqual(try ids(["metadata.content_hash": .string(SHA256.hexDigest("text of b"))]), ["b"])
        XCTAssertEqual(try ids(["id": .string("b")]), ["b"])
        XCTAssertEqual(try ids(["text_content": .string("text of c")]), ["c"])
        XCTAssertEqual(try ids(["session_id": .string("s1")]), ["a", "b", "c"])
        XCTAssertEqual(try ids(["metadata.we\"ird": .string("x")]), [])
    }

    func testPagingThrough45ItemsGivesEachOnceInOrder() throws {
        // Pairs of items share a timestamp so the id tie-break is exercised across page boundaries.
        let items = (0..<45).map { i in item(String(format: "p%02d", i), at: 1_700_000_000 + Int64(i / 2)) }
        XCTAssertEqual(
            try connection.addMemoryItems(items.shuffled(), upsert: false, context: context).compactMap { $0 }.count, 0)
        let expected = items.sorted { ($0.timestamp!, $0.id) > ($1.timestamp!, $1.id) }.map(\.id)
        var seen: [String] = []
        var token: PageCursor?
        var pages = 0
        repeat {
            let page = try connection.conversationHistory(
                HistoryQuery(userID: "u1", limit: 20, cursor: token), context: context)
            pages += 1
            XCTAssertLessThanOrEqual(page.items.count, 20)
            seen += page.items.map(\.id)
            token = page.nextPageToken.isEmpty ? nil : PageCursor(token: page.nextPageToken)
            if !page.nextPageToken.isEmpty { XCTAssertNotNil(token) }
        } while token != nil && pages < 10
        XCTAssertEqual(pages, 3)
        XCTAssertEqual(seen, expected)
    }

    func testExactlyFullPageHasNoToken() throws {
        for i in 0..<20 {
            try connection.addMemoryItem(item("x\(i)", at: 1_700_000_000 + Int64(i)), upsert: false, context: context)
        }
        let page = try connection.conversationHistory(HistoryQuery(userID: "u1", limit: 20), context: context)
        XCTAssertEqual(page.items.count, 20)
        XCTAssertEqual(page.nextPageToken, "")
    }
}
