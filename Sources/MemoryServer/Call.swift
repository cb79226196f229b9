import MemoryDomain
import MemoryUtilities
import Synchronization

/// One request on its way through the server. The loop thread owns its bookkeeping; `state` is the only
/// field a worker writes, so that a call abandoned by a deadline or a Cancel is never started.
final class Call: Sendable {
    enum State: Int {
        case queued = 0
        case running = 1
        case abandoned = 2
        case finished = 3
    }

    let connectionID: UInt64
    let requestID: UInt64
    let method: MemoryMethod
    let payload: [UInt8]
    let deadline: Deadline
    let timeoutMs: UInt64
    let receivedAt = monotonicNanos()
    private let state = Atomic<Int>(State.queued.rawValue)

    init(connectionID: UInt64, requestID: UInt64, method: MemoryMethod, payload: [UInt8], timeoutMs: UInt64) {
        self.connectionID = connectionID
        self.requestID = requestID
        self.method = method
        self.payload = payload
        self.timeoutMs = timeoutMs
        self.deadline = .after(milliseconds: timeoutMs)
    }

    /// Loop side: the response was delivered.
    func finish() { state.store(State.finished.rawValue, ordering: .relaxed) }

    /// Still waiting for a worker or running (not answered, abandoned or cancelled).
    var isLive: Bool { state.load(ordering: .relaxed) <= State.running.rawValue }

    /// Worker side: true when the call may run (it was not abandoned first).
    func start() -> Bool {
        state.compareExchange(
            expected: State.queued.rawValue, desired: State.running.rawValue, ordering: .acquiringAndReleasing
        ).exchanged
    }

    /// Loop side: true when the call had not started yet and now never will.
    @discardableResult
    func abandon() -> Bool {
        let wasQueued = state.compareExchange(
            expected: State.queued.rawValue, desired: State.abandoned.rawValue,
            ordering: .acquiringAndReleasing
        ).exchanged
        if !wasQueued { state.store(State.abandoned.rawValue, ordering: .releasing) }
        return wasQueued
    }
}

/// A finished call: the encoded Response frame (length prefix included).
struct Completion: Sendable {
    let call: Call
    let frame: [UInt8]
}

/// A min-heap of call deadlines, so one timer serves every call of every connection.
struct DeadlineHeap {
    struct Entry {
        let deadline: UInt64
        let call: Call
    }

    private var heap: [Entry] = []

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    /// Drops the entries of calls already answered, so the heap stays the size of what is in flight.
    mutating func removeFinished() {
        let live = heap.filter { $0.call.isLive }
        heap = []
        heap.reserveCapacity(live.count)
        for e in live { push(e) }
    }
    var earliest: UInt64? { heap.first?.deadline }

    mutating func push(_ e: Entry) {
        heap.append(e)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if heap[parent].deadline <= heap[i].deadline { break }
            heap.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && heap[l].deadline < heap[m].deadline { m = l }
            if r < heap.count && heap[r].deadline < heap[m].deadline { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return top
    }
}
