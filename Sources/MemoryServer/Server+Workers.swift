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
        while let call = workQueue.pop() {
            guard let payload = call.start() else { continue }
            stats.busyWorkers.add(1, ordering: .relaxed)
            let frame = execute(call, payload: payload, service)
            stats.busyWorkers.subtract(1, ordering: .relaxed)
            completions.withLock { $0.append(Completion(call: call, frame: frame)) }
            uvMust(uv_async_send(async), "uv_async_send")
        }
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

    func stopWorkers() {
        workQueue.close()
        for t in workerThreads { pthread_join(t, nil) }
        workerThreads = []
    }
}
