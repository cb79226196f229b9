import MemoryDomain
import MemoryUtilities
import XCTest

@testable import MemorySQLite

final class MemoryItemTests: SQLiteTestCase {
    func testAddGetRoundTripsEveryField() throws {
        let original = item(
            "m1", persona: "helper", embedding: [1, 2, 3, 4, 5, 6, 7, 8.5],
            metadata: [
                "n": .number(3), "f": .number(2.5), "b": .bool(true),
                "nested": .object(["a": .array([.null, .string("x")])]),
            ],
            expiresIn: 3600)
        try connection.addMemoryItem(original, upsert: false, context: context)
        let got = try connection.getMemoryItem(id: "m1", context: context)
        XCTAssertEqual(got, original)
    }

    func testEmptyEmbeddingAndMetadataRoundTrip() throws {
        var original = item("m1")
        original.metadata = [:]
        try connection.addMemoryItem(original, upsert: false, context: context)
        XCTAssertEqual(try connection.getMemoryItem(id: "m1", context: context), original)
    }

    func testDuplicateWithoutUpsertNamesTheID() throws {
        try connection.addMemoryItem(item("m1"), upsert: false, context: context)
        do {
            try connection.addMemoryItem(item("m1", text: "other"), upsert: false, context: context)
            XCTFail("expected a duplicate")
        } catch {
            XCTAssertEqual(error.type, .duplicate)
            XCTAssertTrue(error.message.contains("\"m1\""), error.message)
        }
        XCTAssertEqual(try connection.getMemoryItem(id: "m1", context: context).textContent, "text of m1")
    }

    func testUpsertReplaces() throws {
        try connection.addMemoryItem(item("m1"), upsert: false, context: context)
        try connection.addMemoryItem(item("m1", text: "replaced"), upsert: true, context: context)
        XCTAssertEqual(try connection.getMemoryItem(id: "m1", context: context).textContent, "replaced")
    }

    func testExpiredRowCountsAsAbsent() throws {
        try connection.addMemoryItem(item("m1", expiresIn: -1), upsert: false, context: context)
        assertThrows(.notFound) { try self.connection.getMemoryItem(id: "m1", context: self.context) }
        try connection.addMemoryItem(item("m1", text: "fresh"), upsert: false, context: context)
        XCTAssertEqual(try connection.getMemoryItem(id: "m1", context: context).textContent, "fresh")
    }

    func testExpirationAtNowIsExpired() throws {
        try connection.addMemoryItem(item("m1", expiresIn: 0), upsert: false, context: context)
        assertThrows(.notFound) { try self.connection.getMemoryItem(id: "m1", context: self.context) }
        let earlier = CallContext(now: now.adding(seconds: -1))
        XCTAssertEqual(try connection.getMemoryItem(id: "m1", context: earlier).id, "m1")
    }

    func testGetMissingIsNotFoundWithID() {
        do {
            _ = try connection.getMemoryItem(id: "nope", context: context)
            XCTFail("expected not found")
        } catch {
            XCTAssertEqual(error.type, .notFound)
            XCTAssertEqual(error.message, "memory item \"nope\" not found")
        }
    }

    func testDelete() throws {
        try connection.addMemoryItem(item("m1"), upsert: false, context: context)
        try connection.deleteMemoryItem(id: "m1", context: context)
        assertThrows(.notFound) { try self.connection.getMemoryItem(id: "m1", context: self.context) }
        assertThrows(.notFound) { try self.connection.deleteMemoryItem(id: "m1", context: self.context) }
    }

    func testDeleteExpiredIsNotFound() throws {
        try connection.addMemoryItem(item("m1", expiresIn: -5), upsert: false, context: context)
        assertThrows(.notFound) { try self.connection.deleteMemoryItem(id: "m1", context: self.context) }
    }

    func testBatchKeepsOrderAndReportsPerItem() throws {
        let backend = try makeBackendWithBatch(3)
        let conn = try backend.makeConnection()
        defer { conn.close() }
        try conn.addMemoryItem(item("b2"), upsert: false, context: context)
        let items = (0..<8).map { item("b\($0)", text: "batch \($0)") }
        let results = try conn.addMemoryItems(items, upsert: false, context: context)
        XCTAssertEqual(results.count, 8)
        for (i, r) in results.enumerated() {
            if i == 2 {
                XCTAssertEqual(r?.type, .duplicate)
                XCTAssertTrue(r?.message.contains("b2") ?? false)
            } else {
                XCTAssertNil(r, "item \(i): \(String(describing: r))")
            }
        }
        for i in 0..<8 where i != 2 {
            XCTAssertEqual(try conn.getMemoryItem(id: "b\(i)", context: context).textContent, "batch \(i)")
        }
        XCTAssertEqual(try conn.getMemoryItem(id: "b2", context: context).textContent, "text of b2")
    }

    func testBatchUpsertReplaces() throws {
        try connection.addMemoryItem(item("b1"), upsert: false, context: context)
        let results = try connection.addMemoryItems(
            [item("b1", text: "new"), item("b2")], upsert: true, context: context)
        XCTAssertEqual(results.compactMap { $0 }.count, 0)
        XCTAssertEqual(try connection.getMemoryItem(id: "b1", context: context).textContent, "new")
    }

    func testFindByContentHash() throws {
        try connection.addMemoryItem(item("m1", text: "hello"), upsert: false, context: context)
        try connection.addMemoryItem(item("m2", text: "gone", expiresIn: -1), upsert: false, context: context)
        let hash = SHA256.hexDigest("hello")
        XCTAssertEqual(try connection.findByContentHash(userID: "u1", contentHash: hash, context: context), "m1")
        XCTAssertNil(try connection.findByContentHash(userID: "u2", contentHash: hash, context: context))
        XCTAssertNil(
            try connection.findByContentHash(userID: "u1", contentHash: SHA256.hexDigest("gone"), context: context))
    }

    private func makeBackendWithBatch(_ n: Int) throws -> SQLiteBackend {
        try SQLiteBackend(
            dataDirectory: directory, namespace: "batch", limits: limits, batchSize: n,
            logger: .init(label: "test"))
    }
}
