#if canImport(Glibc)
import Glibc
#endif

/// Helper threads for splitting one large scan over the cores. (`DispatchQueue.concurrentPerform` ran every
/// part on the calling thread inside memoryd — measured with perf: all the kernel's samples on the worker
/// threads — so the scan was single-core in the daemon and twice as fast in-process.)
///
/// One job at a time: a scan that finds the helpers busy runs all its parts itself, so concurrent searches
/// never queue behind each other here (the cores are busy anyway).
///
/// `@unchecked Sendable`: the job fields are only touched under `monitor`.
final class ScanPool: @unchecked Sendable {
    static let shared = ScanPool(helpers: UserVectors.cores - 1)

    private let monitor = Monitor()
    private var job: ((Int) -> Void)?
    private var parts = 0
    private var nextPart = 0
    private var unfinished = 0
    let helpers: Int

    init(helpers: Int) {
        self.helpers = max(0, helpers)
        for _ in 0..<self.helpers {
            let context = Unmanaged.passRetained(self).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(
                &thread, nil,
                { context in
                    let pool = Unmanaged<ScanPool>.fromOpaque(context!).takeRetainedValue()
                    pool.helperLoop()
                    return nil
                }, context)
            if rc == 0 { pthread_detach(thread) } else { Unmanaged<ScanPool>.fromOpaque(context).release() }
        }
    }

    /// Runs `body(0)`, …, `body(parts - 1)`, on the helpers and the calling thread, and returns when all are done.
    func run(parts: Int, _ body: (Int) -> Void) {
        guard parts > 1, helpers > 0 else {
            for p in 0..<parts { body(p) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let claimed = monitor.withLock { () -> Bool in
                guard job == nil else { return false }
                job = body
                self.parts = parts
                nextPart = 0
                unfinished = parts
                monitor.broadcast()
                return true
            }
            guard claimed else {
                for p in 0..<parts { body(p) }
                return
            }
            while let p = claimPart() { runPart(p, body) }
            monitor.withLock {
                while unfinished > 0 { _ = monitor.wait(until: .distantFuture) }
                job = nil
            }
        }
    }

    private func claimPart() -> Int? {
        monitor.withLock { () -> Int? in
            guard job != nil, nextPart < parts else { return nil }
            nextPart += 1
            return nextPart - 1
        }
    }

    private func runPart(_ part: Int, _ body: (Int) -> Void) {
        body(part)
        finishPart()
    }

    private func finishPart() {
        monitor.withLock {
            unfinished -= 1
            if unfinished == 0 { monitor.broadcast() }
        }
    }

    private func helperLoop() {
        while true {
            // The job's closure is only borrowed (`withoutActuallyEscaping` in `run`): this thread's reference
            // must be gone before the part is reported finished, so it lives only inside `runClaimedPart`.
            runClaimedPart()
            finishPart()
        }
    }

    private func runClaimedPart() {
        let (part, body) = monitor.withLock { () -> (Int, (Int) -> Void) in
            while true {
                if let job, nextPart < parts {
                    nextPart += 1
                    return (nextPart - 1, job)
                }
                _ = monitor.wait(until: .distantFuture)
            }
        }
        body(part)
    }
}
