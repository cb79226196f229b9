import CLibUV
import Logging
import MemoryDomain
import MemoryUtilities
import MemoryWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Back on the loop thread: finished calls delivered to their connections, and one write per connection per
/// loop iteration.
extension Server {
    /// Loop thread: deliver finished calls to their connections (unless they timed out or went away).
    func drainCompletions() {
        var batch = spareCompletions
        spareCompletions = []
        completions.withLock { swap(&$0, &batch) }
        defer {
            batch.removeAll(keepingCapacity: batch.capacity <= 4096)
            spareCompletions = batch
        }
        for c in batch {
            guard let conn = connections[c.call.connectionID], conn.inFlight[c.call.requestID] === c.call else {
                continue
            }
            conn.inFlight[c.call.requestID] = nil
            c.call.finish()
            stats.inFlight.subtract(1, ordering: .relaxed)
            conn.append(c.frame)
            answered(c.call, FrameCodec.responseStatusCode(c.frame))
            conn.resumeIfBelowLimit()
        }
        flushOutput()
    }

    func connectionHasOutput(_ conn: Connection) {
        if !conn.isDirty {
            conn.isDirty = true
            dirty.append(conn)
        }
    }

    /// One write per connection per loop iteration, however many responses it got.
    func flushOutput() {
        while !dirty.isEmpty {
            // Swap with the spare list rather than copy: neither buffer is reallocated.
            var batch = spareDirty
            swap(&batch, &dirty)
            for conn in batch {
                conn.isDirty = false
                conn.flush()
            }
            batch.removeAll(keepingCapacity: batch.capacity <= 4096)
            spareDirty = batch
        }
        recordAnsweredCalls()
    }
}
