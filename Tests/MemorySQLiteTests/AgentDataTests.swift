import MemoryDomain
import MemoryUtilities
import XCTest

@testable import MemorySQLite

final class AgentDataTests: SQLiteTestCase {
    func data(
        _ id: String, agent: String = "a1", type: String = "log", at seconds: Int64 = 1_700_000_000,
        expiresIn: Double? = nil
    ) -> AgentData {
        AgentData(
            id: id, agentID: agent, timestamp: Timestamp(seconds: seconds), dataType: type,
            content: .object(["step": .number(1), "ok": .bool(true)]), metadata: ["m": .string("v")],
            expiration: expiresIn.map { now.adding(seconds: $0) })
    }

    func testAddGetRoundTrip() throws {
        let d = data("d1", expiresIn: 100)
        try connection.addAgentData(d, context: context)
        XCTAssertEqual(try connection.getAgentData(id: "d1", context: context), d)
        var noContent = data("d2")
        noContent.content = nil
        try connection.addAgentData(noContent, context: context)
        XCTAssertEqual(try connection.getAgentData(id: "d2", context: context), noContent)
        var scalar = data("d3")
        scalar.content = .string("plain")
        try connection.addAgentData(scalar, context: context)
        XCTAssertEqual(try connection.getAgentData(id: "d3", context: context), scalar)
    }

    func testDuplicateAndNotFound() throws {
        try connection.addAgentData(data("d1"), context: context)
        var other = data("d1")
        other.dataType = "other"
        assertThrows(.duplicate) { try self.connection.addAgentData(other, context: self.context) }
        // The same data again is a retry whose first attempt committed: it succeeds, the stored row stays.
        var retry = data("d1")
        retry.timestamp = now.adding(seconds: 5)
        try connection.addAgentData(retry, context: context)
        XCTAssertEqual(try connection.getAgentData(id: "d1", context: context), data("d1"))
        assertThrows(.notFound) { try self.connection.getAgentData(id: "zz", context: self.context) }
        try connection.addAgentData(data("old", expiresIn: -1), context: context)
        assertThrows(.notFound) { try self.connection.getAgentData(id: "old", context: self.context) }
        // An expired row does not block its id.
        try connection.addAgentData(data("old"), context: context)
        XCTAssertEqual(try connection.getAgentData(id: "old", context: context).id, "old")
    }

    func testListNewestFirstWithTypeFilterAndPaging() throws {
        for i in 0..<25 {
            try connection.addAgentData(
                data(
                    String(format: "d%02d", i), type: i % 2 == 0 ? "even" : "odd",
                    at: 1_700_000_000 + Int64(i / 3)), context: context)
        }
        try connection.addAgentData(data("other", agent: "a2"), context: context)
        try connection.addAgentData(data("gone", expiresIn: -1), context: context)
        var seen: [String] = []
        var cursor: PageCursor?
        repeat {
            let page = try connection.listAgentData(
                AgentDataQuery(agentID: "a1", limit: 10, cursor: cursor), context: context)
            seen += page.items.map(\.id)
            cursor = page.nextPageToken.isEmpty ? nil : PageCursor(token: page.nextPageToken)
        } while cursor != nil
        let expected = (0..<25).map { (ts: $0 / 3, id: String(format: "d%02d", $0)) }.sorted {
            ($0.ts, $0.id) > ($1.ts, $1.id)
        }.map(\.id)
        XCTAssertEqual(seen, expected)
        let odd = try connection.listAgentData(
            AgentDataQuery(agentID: "a1", dataType: "odd", limit: 100), context: context)
        XCTAssertEqual(odd.items.count, 12)
        XCTAssertTrue(odd.items.allSatisfy { $0.dataType == "odd" })
        XCTAssertEqual(odd.nextPageToken, "")
    }
}
