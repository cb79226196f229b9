import MemoryUtilities

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex whose `withLock` keeps the body's typed error, which `Synchronization.Mutex` makes awkward
/// for bodies that return non-`Sendable` values; `withLock(until:)` gives up at a call's deadline.
///
/// `@unchecked Sendable`: the only state is the heap-allocated mutex, which exists to be shared across threads.
final class Lock: @unchecked Sendable {
    fileprivate let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// A mutex with a condition variable on the monotonic clock, for waiting on another thread's work.
///
/// `@unchecked Sendable`: the state is the heap-allocated mutex and condition, made to be shared.
final class Monitor: @unchecked Sendable {
    private let lock = Lock()
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deinitialize(count: 1)
        condition.deallocate()
    }

    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T { try lock.withLock(body) }

    /// With the lock held: waits for a `broadcast` (or a spurious wake-up); false once `deadline` has passed.
    func wait(until deadline: Deadline) -> Bool {
        if deadline == .distantFuture {
            pthread_cond_wait(condition, lock.mutex)
            return true
        }
        var until = deadline.monotonicTimespec
        return pthread_cond_timedwait(condition, lock.mutex, &until) == 0 || !deadline.hasPassed
    }

    /// With the lock held: wakes every waiter.
    func broadcast() { pthread_cond_broadcast(condition) }
}

/// A lock whose waiters give up at a deadline (glibc's `pthread_mutex_clocklock` is not visible to Swift,
/// and `timedlock` counts on the wall clock): a flag guarded by a ``Monitor``.
///
/// `@unchecked Sendable`: `held` is only touched under `monitor`.
final class DeadlineLock: @unchecked Sendable {
    private let monitor = Monitor()
    private var held = false

    /// Runs `body` under the lock, or returns nil without running it when the lock is not free by `deadline`.
    func withLock<T, E: Error>(until deadline: Deadline, _ body: () throws(E) -> T) throws(E) -> T? {
        let acquired = monitor.withLock { () -> Bool in
            while held {
                guard monitor.wait(until: deadline) else { return false }
            }
            held = true
            return true
        }
        guard acquired else { return nil }
        defer {
            monitor.withLock {
                held = false
                monitor.broadcast()
            }
        }
        return try body()
    }

    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        // `until: .distantFuture` never gives up.
        try withLock(until: .distantFuture, body)!
    }
}

/// A read-write lock that prefers writers: many searches of one user's vectors run in parallel, and once a
/// writer waits, new searches queue behind it, so a steady stream of searches cannot starve an update
/// (glibc's default rwlock prefers readers and can).
///
/// `@unchecked Sendable`: the only state is the heap-allocated rwlock, which exists to be shared across threads.
final class ReadWriteLock: @unchecked Sendable {
    private let rwlock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        rwlock = .allocate(capacity: 1)
        rwlock.initialize(to: pthread_rwlock_t())
        var attr = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attr)
        #if canImport(Glibc)
        pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        #endif
        pthread_rwlock_init(rwlock, &attr)
        pthread_rwlockattr_destroy(&attr)
    }

    deinit {
        pthread_rwlock_destroy(rwlock)
        rwlock.deinitialize(count: 1)
        rwlock.deallocate()
    }

    func withReadLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_rwlock_rdlock(rwlock)
        defer { pthread_rwlock_unlock(rwlock) }
        return try body()
    }

    func withWriteLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_rwlock_wrlock(rwlock)
        defer { pthread_rwlock_unlock(rwlock) }
        return try body()
    }
}

extension Deadline {
    /// The deadline as an absolute CLOCK_MONOTONIC time, for the pthread calls that wait until one.
    var monotonicTimespec: timespec {
        timespec(tv_sec: Int(uptimeNanos / 1_000_000_000), tv_nsec: Int(uptimeNanos % 1_000_000_000))
    }
}
