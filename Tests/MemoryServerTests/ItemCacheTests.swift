import MemoryUtilities
import Synchronization
import XCTest

@testable import MemoryServer

/// The read cache's rules, on a clock the test moves: a byte budget, a time to live, the item's own
/// expiration, and no stale fill after a write.
final class ItemCacheTests: XCTestCase {
    final class Clock: Sendable {
        let nanos = Atomic<UInt64>(1_000_000_000)
        let wall = Mutex(Timestamp(seconds: 1_800_000_000))
        func advance(ms: UInt64) {
            nanos.add(ms * 1_000_000, ordering: .relaxed)
            wall.withLock { $0 = Timestamp(microseconds: $0.microseconds + Int64(ms) * 1000) }
        }
    }

    let clock = Clock()

    func makeCache(maxBytes: Int = 1 << 20, ttlMs: Int = 1000) -> ItemCache {
        let c = clock
        return ItemCache(
            maxBytes: maxBytes, ttlMilliseconds: ttlMs, clock: { c.nanos.load(ordering: .relaxed) },
            wallClock: { c.wall.withLock { $0 } })
    }

    func payload(_ n: Int, _ byte: UInt8 = 1) -> [UInt8] { [UInt8](repeating: byte, count: n) }

    func testServesWhatWasStoredUntilItsTimeToLive() {
        let cache = makeCache(ttlMs: 1000)
        cache.stored("a", payload: payload(10), expiration: nil, since: cache.epoch)
        XCTAssertEqual(cache.lookup("a"), payload(10))
        clock.advance(ms: 999)
        XCTAssertNotNil(cache.lookup("a"))
        clock.advance(ms: 1)
        XCTAssertNil(cache.lookup("a"), "an entry older than cache.ttl_ms is never served")
        XCTAssertEqual(cache.figures.entries, 0)
        XCTAssertEqual(cache.hits.load(ordering: .relaxed), 2)
        XCTAssertEqual(cache.misses.load(ordering: .relaxed), 1)
    }

    func testAnExpiredItemIsNeverServed() {
        let cache = makeCache(ttlMs: 60_000)
        let expires = Timestamp(microseconds: clock.wall.withLock { $0 }.microseconds + 500_000)
        cache.stored("e", payload: payload(10), expiration: expires, since: cache.epoch)
        XCTAssertNotNil(cache.lookup("e"))
        clock.advance(ms: 500)
        XCTAssertNil(cache.lookup("e"))
    }

    func testTheByteBudgetEvictsTheLeastRecentlyUsed() {
        let entry = 100 + 1 + ItemCache.entryOverhead
        let cache = makeCache(maxBytes: 3 * entry)
        for id in ["a", "b", "c"] { cache.stored(id, payload: payload(100), expiration: nil, since: cache.epoch) }
        XCTAssertNotNil(cache.lookup("a"))  // a is now the most recently used; b the least
        cache.stored("d", payload: payload(100), expiration: nil, since: cache.epoch)
        XCTAssertNil(cache.lookup("b"))
        XCTAssertNotNil(cache.lookup("a"))
        XCTAssertNotNil(cache.lookup("c"))
        XCTAssertNotNil(cache.lookup("d"))
        XCTAssertLessThanOrEqual(cache.figures.bytes, 3 * entry)
        cache.stored("big", payload: payload(4 * entry), expiration: nil, since: cache.epoch)
        XCTAssertNil(cache.lookup("big"), "an item larger than the whole budget is not cached")
        XCTAssertNotNil(cache.lookup("d"), "and does not empty the cache on its way")
    }

    func testAReadThatRacedAWriteDoesNotFill() {
        let cache = makeCache()
        cache.stored("x", payload: payload(10, 1), expiration: nil, since: cache.epoch)
        // A worker starts a get of x and reads version 1 from the store; meanwhile x is deleted.
        let readBegan = cache.epoch
        cache.invalidate("x")
        cache.fill("x", payload: payload(10, 1), expiration: nil, since: readBegan)
        XCTAssertNil(cache.lookup("x"), "the deleted item must not come back through a late fill")
        // A write to another id does not stop the fill.
        let later = cache.epoch
        cache.invalidate("other")
        cache.fill("x", payload: payload(10, 2), expiration: nil, since: later)
        XCTAssertEqual(cache.lookup("x"), payload(10, 2))
    }

    func testTwoRacingWritesLeaveNoEntryRatherThanAWrongOne() {
        let cache = makeCache()
        let first = cache.epoch
        let second = cache.epoch
        // Both writes began before either finished: which one the store kept is unknown here.
        cache.stored("y", payload: payload(10, 2), expiration: nil, since: second)
        cache.stored("y", payload: payload(10, 1), expiration: nil, since: first)
        XCTAssertNil(cache.lookup("y"))
    }

    /// Found by BadInputTests: with exactly as many writes since the read as the ring holds, the check looped
    /// forever on a worker while the loop thread waited for the cache's lock.
    func testAReadExactlyAsOldAsTheRememberedWritesIsChecked() {
        let cache = makeCache()
        let old = cache.epoch
        for i in 0..<ItemCache.recentWrites { cache.invalidate("w\(i)") }
        cache.fill("z", payload: payload(10), expiration: nil, since: old)
        XCTAssertNotNil(cache.lookup("z"), "no write to z among the remembered ones")
        let older = cache.epoch
        for i in 0..<(ItemCache.recentWrites - 1) { cache.invalidate("v\(i)") }
        cache.invalidate("z")
        cache.fill("z", payload: payload(10), expiration: nil, since: older)
        XCTAssertNil(cache.lookup("z"), "the oldest remembered write was to z")
    }

    func testAReadOlderThanTheRememberedWritesDoesNotFill() {
        let cache = makeCache()
        let old = cache.epoch
        for i in 0...ItemCache.recentWrites { cache.invalidate("w\(i)") }
        cache.fill("z", payload: payload(10), expiration: nil, since: old)
        XCTAssertNil(cache.lookup("z"), "past the ring, a write to z cannot be ruled out")
    }
}
