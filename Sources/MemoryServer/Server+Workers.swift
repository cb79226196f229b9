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
        while let call = workQueue.pop() {
            // Marked busy before the call may start, so that a worker the loop sees idle never starts one.
            worker.running.withLock { $0 = Worker.Running(method: call.method, since: monotonicNanos()) }
            guard let payload = call.start() else {
                worker.running.withLock { $0 = nil }
                continue
            }
            stats.busyWorkers.add(1, ordering: .relaxed)
            let frame = execute(call, payload: payload, service)
            stats.busyWorkers.subtract(1, ordering: .relaxed)
            worker.running.withLock { $0 = nil }
            completions.withLock { $0.append(Completion(call: call, frame: frame)) }
            uvMust(uv_async_send(async), "uv_async_send")
        }
        // The queue is closed and empty: tell a draining loop that one more worker is done.
        worker.exited.store(true, ordering: .releasing)
        uvMust(uv_async_send(async), "uv_async_send")
    }

    func execute(_ call: Call, payload: [UInt8], _ service: MemoryService) -> [UInt8] {
        if call.deadline.hasPassed {
            return FrameCodec.encodeResponse(
                id: call.requestID, error: .call(.deadlineExceeded, "deadline exceeded before the call started"),
                payload: [])
        }
        do throws(MemoryError) {
            let request = try PayloadCodec.decodeRequest(call.method, payload)
            let response = try service.handle(request, context: CallContext(deadline: call.deadline, now: .now()))
            let payload = PayloadCodec.encodeResponse(response)
            let frame = FrameCodec.encodeResponse(id: call.requestID, error: nil, payload: payload)
            guard frame.count - 4 <= maxFrameBytes else {
                throw MemoryError.call(
                    .resourceExhausted,
                    "the response is \(frame.count - 4) bytes, over max_frame_bytes (\(maxFrameBytes)); ask for a smaller page"
                )
            }
            return frame
        } catch {
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
}
