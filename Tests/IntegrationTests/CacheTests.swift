import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's read cache as a client sees it: items added or read are served again from memory (health
/// counts the hits), a delete or an upsert through this daemon is seen at once, a change made through
/// another daemon on the same Firestore project within `cache.ttl_ms`, and an expired item never.
final class CacheTests: XCTestCase {
    func health(_ c: MemoryClient, _ key: String) throws -> Double? { try c.healthCheck().details[key]?.numberValue }

    func testAddedAndReadItemsAreServedFromTheCacheAndWritesAreSeenAtOnce() throws {
        let daemon = try startDaemon()
        defer {
            _ = daemon.stop()
            daemon.removeDirectory()
        }
        let c = try daemon.client()
        let item = MemoryItem(id: "c-1", userID: "u", textContent: "green tea", embedding: [1, 0, 0, 0, 0, 0, 0, 0])
        _ = try c.addMemoryItem(item)
        let fromCache = try c.getMemoryItem("c-1")
        XCTAssertEqual(try health(c, "cache_hits"), 1, "the get after the add is a hit")
        XCTAssertEqual(try health(c, "cache_entries"), 1)
        // What the cache serves is what the store holds (history reads the store).
        let stored = try c.conversationHistory(HistoryRequest(userID: "u")).items
        XCTAssertEqual(stored, [fromCache])

        var changed = item
        changed.textContent = "black coffee"
        _ = try c.addMemoryItem(changed, upsert: true)
        XCTAssertEqual(try c.getMemoryItem("c-1").textContent, "black coffee", "an upsert replaces the entry")
        try c.deleteMemoryItem("c-1")
        XCTAssertThrowsError(try c.getMemoryItem("c-1"), "a delete drops the entry before its reply") {
            XCTAssertEqual(($0 as? MemoryError)?.type, .notFound)
        }
        XCTAssertEqual(try health(c, "cache_entries"), 0)
    }

    func testAnExpiredItemIsNeverServedFromTheCache() throws {
        let daemon = try startDaemon()
        defer {
            _ = daemon.stop()
            daemon.removeDirectory()
        }
        let c = try daemon.client()
        let expiration = Timestamp(microseconds: Timestamp.now().microseconds + 800_000)
        _ = try c.addMemoryItem(MemoryItem(id: "c-exp", userID: "u", textContent: "soon gone", expiration: expiration))
        XCTAssertNoThrow(try c.getMemoryItem("c-exp"))
        XCTAssertEqual(try health(c, "cache_hits"), 1)
        while Timestamp.now() <= expiration { usleep(50_000) }  // the item's own clock is the behaviour here
        XCTAssertThrowsError(try c.getMemoryItem("c-exp")) { XCTAssertEqual(($0 as? MemoryError)?.type, .notFound) }
    }

    func testZeroBytesTurnsTheCacheOff() throws {
        let daemon = try startDaemon(["MEMORYD_CACHE_MAX_BYTES": "0"])
        defer {
            _ = daemon.stop()
            daemon.removeDirectory()
        }
        let c = try daemon.client()
        _ = try c.addMemoryItem(MemoryItem(id: "c-off", userID: "u", textContent: "x"))
        _ = try c.getMemoryItem("c-off")
        let details = try c.healthCheck().details
        XCTAssertEqual(details["cache_max_bytes"], .number(0))
        XCTAssertNil(details["cache_hits"])
    }

    /// Two daemons on one Firestore project: a delete through the first is seen by the first at once and
    /// by the second within its cache.ttl_ms.
    func testTwoDaemonsOnOneFirestoreSeeADeleteWithinTheTimeToLive() throws {
        let namespace = "cache" + IDGenerator.uuid().prefix(8)
        let ttlMs = 1500
        let env = ["MEMORYD_NAMESPACE": namespace, "MEMORYD_CACHE_TTL_MS": String(ttlMs)]
        let first = try startDaemon(env, backend: "firestore")
        let second = try startDaemon(env, backend: "firestore")
        defer {
            for d in [first, second] {
                _ = d.stop()
                d.removeDirectory()
            }
        }
        let a = try first.client(), b = try second.client()
        _ = try a.addMemoryItem(MemoryItem(id: "shared-1", userID: "u", textContent: "shared"))
        XCTAssertEqual(try b.getMemoryItem("shared-1").textContent, "shared")  // the second caches it
        XCTAssertNoThrow(try b.getMemoryItem("shared-1"))
        XCTAssertEqual(try health(b, "cache_hits"), 1)

        try a.deleteMemoryItem("shared-1")
        let deleted = monotonicNanos()
        XCTAssertThrowsError(try a.getMemoryItem("shared-1"), "the first sees its own delete at once") {
            XCTAssertEqual(($0 as? MemoryError)?.type, .notFound)
        }
        // The second may serve its copy until the entry's time to live has passed, never after.
        var gone = false
        while !gone {
            // Measured from when the get was sent, so a slow reply cannot make a timely hit look late.
            let sent = monotonicNanos()
            let result = Result { () throws(MemoryError) in try b.getMemoryItem("shared-1") }
            switch result {
            case .success:
                let waited = Double(sent - deleted) / 1e6
                XCTAssertLessThan(waited, Double(ttlMs), "served \(waited) ms after the delete: past cache.ttl_ms")
                if waited >= Double(ttlMs) { return }
                usleep(100_000)
            case .failure(let e):
                XCTAssertEqual(e.type, .notFound, "\(e)")
                gone = true
            }
        }
        XCTAssertTrue(gone)
    }
}
