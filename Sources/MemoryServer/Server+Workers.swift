import CLibUV
import Logging
import MemoryDomain
import MemoryUtilities
import MemoryWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One worker thread as the loop sees it: the call it is running (for the log of a drain that cannot wait for
/// it) and whether it has exited.
final class Worker: Sendable {
    struct Running {
        var method: MemoryMethod
        var since: UInt64
    }

    let index: Int
    let running = Mutex<Running?>(nil)
    let exited = Atomic<Bool>(false)
    /// Set once by the loop thread before the thread starts, read after it exited.
    nonisolated(unsafe) var thread = pthread_t()

    init(index: Int) { self.index = index }
}

/// The worker threads: each runs calls on its own backend connection and hands the encoded response back
/// through `completions` + `uv_async_send`.
extension Server {
    // MARK: - Workers

    func workerMain(service: MemoryService, async: UnsafeMutablePointer<uv_async_t>, worker: Worker) {
        let cacheEpoch = CacheEpoch()
        if let cache {
            // The store's confirmed changes reach the cache before the reply is sent.
            service.onChange = { change in
                switch change {
                case .stored(let items):
                    cache.stored(
                        items.map { ($0.id, PayloadCodec.encodeResponse(.getMemoryItem($0)), $0.expiration) },
                        since: cacheEpoch.value)
                case .deleted(let id): cache.invalidate(id)
                }
            }
        }
        while let call = workQueue.pop() {
            // Marked busy before the call may start, so that a worker the loop sees idle never starts one.
            worker.running.withLock { $0 = Worker.Running(method: call.method, since: monotonicNanos()) }
            guard let payload = call.start() else {
                worker.running.withLock { $0 = nil }
                continue
            }
            stats.busyWorkers.add(1, ordering: .relaxed)
            cacheEpoch.value = cache?.epoch ?? 0
            let frame = execute(call, payload: payload, service, cacheEpoch: cacheEpoch.value)
            stats.busyWorkers.subtract(1, ordering: .relaxed)
            worker.running.withLock { $0 = nil }
            completions.withLock { $0.append(Completion(call: call, frame: frame)) }
            uvMust(uv_async_send(async), "uv_async_send")
        }
        // The queue is closed and empty: tell a draining loop that one more worker is done.
        worker.exited.store(true, ordering: .releasing)
        uvMust(uv_async_send(async), "uv_async_send")
    }

    func execute(_ call: Call, payload: [UInt8], _ service: MemoryService, cacheEpoch: UInt64) -> [UInt8] {
        if call.deadline.hasPassed {
            return FrameCodec.encodeResponse(
                id: call.requestID, error: .call(.deadlineExceeded, "deadline exceeded before the call started"),
                payload: [])
        }
        var request: MethodRequest?
        do throws(MemoryError) {
            request = try PayloadCodec.decodeRequest(call.method, payload)
            let response = try service.handle(request!, context: CallContext(deadline: call.deadline, now: .now()))
            let payload = PayloadCodec.encodeResponse(response)
            if let cache, case .getMemoryItem(let item) = response {
                cache.fill(item.id, payload: payload, expiration: item.expiration, since: cacheEpoch)
            }
            let frame = FrameCodec.encodeResponse(id: call.requestID, error: nil, payload: payload)
            guard frame.count - 4 <= maxFrameBytes else {
                throw MemoryError.call(
                    .resourceExhausted,
                    "the response is \(frame.count - 4) bytes, over max_frame_bytes (\(maxFrameBytes)); ask for a smaller page"
                )
            }
            return frame
        } catch {
            if let cache, let request { invalidateAfterFailure(request, in: cache) }
            stats.record(error)
            if error.type == .storage || error.type == .connection || error.type == .operation {
                logger.warning("call failed", metadata: ["method": "\(call.method.rawValue)", "error": "\(error)"])
            }
            return FrameCodec.encodeResponse(id: call.requestID, error: error, payload: [])
        }
    }

    /// Workers inside a call. Once the queue is closed and every connection gone (every queued call
    /// abandoned), the others exit at once: they cannot start a call any more.
    var workersInCalls: [Worker] {
        workers.filter { !$0.exited.load(ordering: .acquiring) && $0.running.withLock { $0 != nil } }
    }

    /// Joins every worker but `busy`, which are left inside their backend calls to the process exit (a drain does
    /// not wait past `drain_timeout_ms`). Call with the queue closed and no connection left.
    func joinWorkers(except busy: [Worker]) {
        let left = Set(busy.map(\.index))
        for w in workers where !left.contains(w.index) { pthread_join(w.thread, nil) }
        workers = []
    }

    /// A write that failed may still have reached the store (a timeout after the commit): its explicit ids
    /// leave the cache, so the next read asks the store.
    private func invalidateAfterFailure(_ request: MethodRequest, in cache: ItemCache) {
        switch request {
        case .addMemoryItem(let item, _, _) where !item.id.isEmpty: cache.invalidate(item.id)
        case .addMemoryItems(let items, _): for item in items where !item.id.isEmpty { cache.invalidate(item.id) }
        case .deleteMemoryItem(let id), .getMemoryItem(let id): cache.invalidate(id)
        default: break
        }
    }
}

/// The cache's write epoch when a worker's current call began (one per worker thread).
final class CacheEpoch {
    var value: UInt64 = 0
}
