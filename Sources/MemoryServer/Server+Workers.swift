import CLibUV
import Logging
import MemoryDomain
import MemoryUtilities
import MemoryWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The worker threads: each runs calls on its own backend connection and hands the encoded response back
/// through `completions` + `uv_async_send`.
extension Server {
    // MARK: - Workers

    func workerMain(service: MemoryService, async: UnsafeMutablePointer<uv_async_t>) {
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
            guard call.start() else { continue }
            stats.busyWorkers.add(1, ordering: .relaxed)
            cacheEpoch.value = cache?.epoch ?? 0
            let frame = execute(call, service, cacheEpoch: cacheEpoch.value)
            stats.busyWorkers.subtract(1, ordering: .relaxed)
            completions.withLock { $0.append(Completion(call: call, frame: frame)) }
            uvMust(uv_async_send(async), "uv_async_send")
        }
    }

    func execute(_ call: Call, _ service: MemoryService, cacheEpoch: UInt64) -> [UInt8] {
        if call.deadline.hasPassed {
            return FrameCodec.encodeResponse(
                id: call.requestID, error: .call(.deadlineExceeded, "deadline exceeded before the call started"),
                payload: [])
        }
        var request: MethodRequest?
        do throws(MemoryError) {
            request = try PayloadCodec.decodeRequest(call.method, call.payload)
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

    func stopWorkers() {
        workQueue.close()
        for t in workerThreads { pthread_join(t, nil) }
        workerThreads = []
    }
}

/// The cache's write epoch when a worker's current call began (one per worker thread).
final class CacheEpoch {
    var value: UInt64 = 0
}
