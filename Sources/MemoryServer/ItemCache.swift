import MemoryDomain
import MemoryUtilities
import Synchronization

/// A write-through cache of memory items, so that a GetMemoryItem it can answer is answered on the loop
/// thread without the worker hop. It holds each item as its encoded GetMemoryItemResponse, ready to send.
///
/// - Bounded in bytes (`cache.max_bytes`), least recently used first out.
/// - An entry lives at most `cache.ttl_ms`: with several memoryd on one Firestore project, that bounds how
///   long a change made through another daemon can go unseen here. Changes made through this daemon are seen
///   at once: adds and upserts replace the entry, deletes drop it, before their reply is sent.
/// - An item whose own expiration has passed is never served.
/// - A worker's read fills the cache only if no write touched the id since the read began (``epoch`` and
///   the ring of recent writes), so a read that raced a delete cannot bring the deleted item back.
///
/// `Sendable`: all state is behind one mutex, held for a dictionary lookup or update, never across I/O.
final class ItemCache: Sendable {
    let maxBytes: Int
    let ttlNanos: UInt64
    let hits = Atomic<Int>(0)
    let misses = Atomic<Int>(0)
    private let state: Mutex<State>
    /// Monotonic nanoseconds and the wall clock; tests pass their own.
    private let clock: @Sendable () -> UInt64
    private let wallClock: @Sendable () -> Timestamp

    /// What an entry costs beyond its payload and id (node, dictionary slot, string headers).
    static let entryOverhead = 128
    /// Writes remembered for the read-fill check; a read older than all of them does not fill.
    static let recentWrites = 4096

    init(
        maxBytes: Int, ttlMilliseconds: Int, clock: @escaping @Sendable () -> UInt64 = monotonicNanos,
        wallClock: @escaping @Sendable () -> Timestamp = { .now() }
    ) {
        self.maxBytes = maxBytes
        self.ttlNanos = UInt64(ttlMilliseconds) * 1_000_000
        self.clock = clock
        self.wallClock = wallClock
        state = Mutex(State(ringCapacity: Self.recentWrites))
    }

    struct Figures {
        var bytes: Int
        var entries: Int
    }

    var figures: Figures { state.withLock { Figures(bytes: $0.bytes, entries: $0.entries.count) } }

    /// The write epoch: a worker reads it before it starts a call and hands it back with what it fills.
    var epoch: UInt64 { state.withLock { $0.epoch } }

    // MARK: - Loop thread

    /// The encoded GetMemoryItemResponse of `id`, when cached, fresh and not expired.
    func lookup(_ id: String) -> [UInt8]? {
        let now = clock()
        let payload: [UInt8]? = state.withLock { s in
            guard let node = s.entries[id] else { return nil }
            if now &- node.storedAt >= ttlNanos || node.isExpired(at: wallClock()) {
                s.remove(node)
                return nil
            }
            s.touch(node)
            return node.payload
        }
        if payload != nil { hits.add(1, ordering: .relaxed) } else { misses.add(1, ordering: .relaxed) }
        return payload
    }

    // MARK: - Workers

    /// A worker read `id` from the store in a call that began at `since`: cache it unless a write touched
    /// `id` after that (the read may predate it).
    func fill(_ id: String, payload: [UInt8], expiration: Timestamp?, since: UInt64) {
        state.withLock { s in
            guard s.unwritten(id, since: since) else { return }
            s.insert(id, payload: payload, expiration: expiration, storedAt: clock(), maxBytes: maxBytes)
        }
    }

    /// A worker stored these items in a call that began at `since`. When another write to one of them
    /// happened meanwhile, which of the two the store kept is unknown here: that entry is dropped instead.
    func stored(_ items: [(id: String, payload: [UInt8], expiration: Timestamp?)], since: UInt64) {
        let now = clock()
        state.withLock { s in
            for item in items {
                let alone = s.unwritten(item.id, since: since)
                s.recordWrite(item.id)
                if alone {
                    s.insert(
                        item.id, payload: item.payload, expiration: item.expiration, storedAt: now, maxBytes: maxBytes)
                } else if let node = s.entries[item.id] {
                    s.remove(node)
                }
            }
        }
    }

    func stored(_ id: String, payload: [UInt8], expiration: Timestamp?, since: UInt64) {
        stored([(id, payload, expiration)], since: since)
    }

    /// `id` was deleted, or a write to it failed in a way that may or may not have reached the store.
    func invalidate(_ id: String) {
        state.withLock { s in
            s.recordWrite(id)
            if let node = s.entries[id] { s.remove(node) }
        }
    }

    // MARK: - State

    final class Node {
        let id: String
        let payload: [UInt8]
        let expiration: Timestamp?
        let storedAt: UInt64
        let size: Int
        var newer: Node?
        unowned(unsafe) var older: Node?

        init(id: String, payload: [UInt8], expiration: Timestamp?, storedAt: UInt64) {
            self.id = id
            self.payload = payload
            self.expiration = expiration
            self.storedAt = storedAt
            self.size = payload.count + id.utf8.count + ItemCache.entryOverhead
        }

        func isExpired(at now: Timestamp) -> Bool { expiration.map { $0 <= now } ?? false }
    }

    struct State: ~Copyable {
        var entries: [String: Node] = [:]
        var bytes = 0
        /// Most recently used end of the list, and least recently used end.
        var newest: Node?
        var oldest: Node?
        var epoch: UInt64 = 0
        /// The last writes: (epoch, id), oldest overwritten first.
        var ring: [(epoch: UInt64, id: String)]
        var ringNext = 0
        /// The epoch of the last write to each id still in the ring: the race check in O(1).
        var lastWrite: [String: UInt64] = [:]

        init(ringCapacity: Int) {
            ring = Array(repeating: (0, ""), count: ringCapacity)
        }

        mutating func recordWrite(_ id: String) {
            epoch += 1
            let evicted = ring[ringNext]
            if lastWrite[evicted.id] == evicted.epoch { lastWrite[evicted.id] = nil }
            ring[ringNext] = (epoch, id)
            lastWrite[id] = epoch
            ringNext = (ringNext + 1) % ring.count
        }

        /// True when no write to `id` happened after epoch `since`. The ring remembers the last
        /// `ring.count` writes; a call older than all of them cannot be vouched for.
        func unwritten(_ id: String, since: UInt64) -> Bool {
            if epoch - since > UInt64(ring.count) { return false }
            return (lastWrite[id] ?? 0) <= since
        }

        mutating func insert(_ id: String, payload: [UInt8], expiration: Timestamp?, storedAt: UInt64, maxBytes: Int) {
            if let old = entries[id] { remove(old) }
            let node = Node(id: id, payload: payload, expiration: expiration, storedAt: storedAt)
            guard node.size <= maxBytes else { return }
            while bytes + node.size > maxBytes, let victim = oldest { remove(victim) }
            entries[id] = node
            bytes += node.size
            link(node)
        }

        mutating func remove(_ node: Node) {
            entries[node.id] = nil
            bytes -= node.size
            unlink(node)
        }

        mutating func touch(_ node: Node) {
            guard newest !== node else { return }
            unlink(node)
            link(node)
        }

        private mutating func link(_ node: Node) {
            node.older = newest
            node.newer = nil
            newest?.newer = node
            newest = node
            if oldest == nil { oldest = node }
        }

        private mutating func unlink(_ node: Node) {
            if let n = node.newer { n.older = node.older } else { newest = node.older }
            if let o = node.older { o.newer = node.newer } else { oldest = node.newer }
            node.newer = nil
            node.older = nil
        }
    }
}
