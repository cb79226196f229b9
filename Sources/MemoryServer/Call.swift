import MemoryDomain
import MemoryUtilities
import Synchronization

/// One request on its way through the server. The loop thread owns its bookkeeping; `state` decides who may
/// touch the payload: the worker that starts the call takes it, the loop that abandons a queued call drops it.
/// Either way the call keeps nothing heavy afterwards, however long its deadline keeps it in the heap.
final class Call: Sendable {
    enum State: Int {
        case queued = 0
        case running = 1
        case abandoned = 2
    }

    let connectionID: UInt64
    let requestID: UInt64
    let method: MemoryMethod
    let deadline: Deadline
    let timeoutMs: UInt64
    /// The payload's size, counted in `queuedBytes` from the push until the payload is taken or dropped.
    let payloadBytes: Int
    private let payload: Mutex<[UInt8]>
    let receivedAt = monotonicNanos()
    private let state = Atomic<Int>(State.queued.rawValue)
    /// The server's count of payload bytes waiting in the queue (`queue_max_bytes`).
    private let queuedBytes: QueuedBytes

    init(
        connectionID: UInt64, requestID: UInt64, method: MemoryMethod, payload: [UInt8], timeoutMs: UInt64,
        queuedBytes: QueuedBytes
    ) {
        self.connectionID = connectionID
        self.requestID = requestID
        self.method = method
        self.payloadBytes = payload.count
        self.payload = Mutex(payload)
        self.timeoutMs = timeoutMs
        self.deadline = .after(milliseconds: timeoutMs)
        self.queuedBytes = queuedBytes
        queuedBytes.add(payload.count)
    }

    /// Worker side: the payload when the call may run, nil when it was abandoned first. The call gives the
    /// payload up: from now on only the worker holds it.
    func start() -> [UInt8]? {
        guard
            state.compareExchange(
                expected: State.queued.rawValue, desired: State.running.rawValue, ordering: .acquiringAndReleasing
            ).exchanged
        else { return nil }
        let bytes = payload.withLock { p in
            defer { p = [] }
            return p
        }
        queuedBytes.subtract(payloadBytes)
        return bytes
    }

    /// Loop side: true when the call had not started yet and now never will (its payload is dropped). A call
    /// already running is left alone: it finishes, and its deadline still bounds when it is answered.
    @discardableResult
    func abandon() -> Bool {
        guard
            state.compareExchange(
                expected: State.queued.rawValue, desired: State.abandoned.rawValue, ordering: .acquiringAndReleasing
            ).exchanged
        else { return false }
        payload.withLock { $0 = [] }
        queuedBytes.subtract(payloadBytes)
        return true
    }
}

/// Payload bytes of the calls waiting for a worker: added when a call is made, subtracted when a worker
/// takes its payload or the call is abandoned before that. Only the loop thread adds.
final class QueuedBytes: Sendable {
    private let bytes = Atomic<Int>(0)
    var value: Int { bytes.load(ordering: .relaxed) }
    func add(_ n: Int) { bytes.add(n, ordering: .relaxed) }
    func subtract(_ n: Int) { bytes.subtract(n, ordering: .relaxed) }
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

    /// Keeps only the entries whose call `isInFlight` says still needs its deadline.
    mutating func removeAll(keepingOnly isInFlight: (Call) -> Bool) {
        let live = heap.filter { isInFlight($0.call) }
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
