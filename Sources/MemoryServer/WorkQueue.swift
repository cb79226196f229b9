import CLibUV

#if canImport(Glibc)
import Glibc
#endif

/// A bounded multi-producer multi-consumer queue: the loop thread pushes without ever blocking (a full
/// queue is an answer, RESOURCE_EXHAUSTED), worker threads block in `pop` until there is work or the queue
/// is closed. A ring buffer under one pthread mutex; a condition variable wakes idle workers.
final class WorkQueue<Element>: @unchecked Sendable {  // all state is guarded by `mutex`
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let notEmpty = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var ring: [Element?]
    private var head = 0
    private var count = 0
    private var closed = false
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        ring = Array(repeating: nil, count: capacity)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(notEmpty, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(notEmpty)
        mutex.deallocate()
        notEmpty.deallocate()
    }

    /// False when the queue is full or closed.
    func tryPush(_ e: Element) -> Bool {
        pthread_mutex_lock(mutex)
        guard !closed, count < capacity else {
            pthread_mutex_unlock(mutex)
            return false
        }
        ring[(head + count) % capacity] = e
        count += 1
        pthread_mutex_unlock(mutex)
        // Signalled after unlocking, so the woken worker does not block on the mutex we still hold.
        pthread_cond_signal(notEmpty)
        return true
    }

    /// Blocks until an element is there; nil once the queue is closed and empty.
    func pop() -> Element? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while count == 0 && !closed { pthread_cond_wait(notEmpty, mutex) }
        guard count > 0 else { return nil }
        let e = ring[head]
        ring[head] = nil
        head = (head + 1) % capacity
        count -= 1
        return e
    }

    var depth: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return count
    }

    /// Wakes every worker; the ones that find the queue empty return.
    func close() {
        pthread_mutex_lock(mutex)
        closed = true
        pthread_cond_broadcast(notEmpty)
        pthread_mutex_unlock(mutex)
    }
}

/// Starts a pthread running `body` (Foundation's Thread is not needed for this).
func startThread(name: String, stackSize: Int = 8 << 20, _ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box: @unchecked Sendable {  // handed to exactly one new thread
        let body: @Sendable () -> Void
        let name: String
        init(_ b: @escaping @Sendable () -> Void, _ n: String) {
            body = b
            name = n
        }
    }
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setstacksize(&attr, stackSize)
    var tid = pthread_t()
    let box = Unmanaged.passRetained(Box(body, name)).toOpaque()
    let rc = pthread_create(
        &tid, &attr,
        { arg in
            let box = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! Box
            cuv_set_thread_name(String(box.name.prefix(15)))
            box.body()
            return nil
        }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    pthread_attr_destroy(&attr)
    return tid
}
