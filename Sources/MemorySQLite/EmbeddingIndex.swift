import MemoryDomain
import MemoryUtilities

/// What the search index needs to know of one stored embedding.
struct IndexedVector {
    var id: String
    var userID: String
    var persona: String
    var session: String
    /// Microseconds; nil = never expires.
    var expiration: Int64?
    var embedding: [Float]
}

/// A change to apply to the index after its transaction committed.
enum IndexChange {
    /// Insert or replace the vector of `vector.id` (in `vector.userID`'s index).
    case put(IndexedVector)
    /// Drop `id` from `userID`'s index.
    case remove(id: String, userID: String)

    var userID: String {
        switch self {
        case .put(let v): v.userID
        case .remove(_, let userID): userID
        }
    }
}

/// Exact nearest-neighbour search over users' embeddings, kept in memory within a byte budget and shared by
/// all connections of a backend.
///
/// A user is loaded on their first search, by that search's connection and without any lock that writers
/// need: the user is first marked *loading*, and every change committed from then on is recorded beside the
/// mark; the load's read starts after the mark, so replaying the recorded changes over what it read gives the
/// committed state (a change both read and recorded is replayed idempotently: puts and removes set the final
/// value of one id). Other searches of that user wait for the load. When the loaded users pass the budget,
/// the least recently searched are dropped; a user who alone would not fit is never loaded but searched by
/// streaming from sqlite (``SQLiteConnection``).
///
/// `@unchecked Sendable`: `users` and the counters are touched only under `monitor`; each ``UserVectors``
/// guards itself.
final class EmbeddingIndex: @unchecked Sendable {
    let dimension: Int
    /// Bytes the loaded users may take together (``UserVectors/bytes``).
    let budgetBytes: Int
    /// The scan kernels of every user's vectors and of streamed searches.
    let kernels: VectorKernels

    /// A load in progress: the changes committed since it began, in commit order.
    final class Loading {
        fileprivate var changes: [IndexChange] = []
    }

    private enum Entry {
        case loaded(UserVectors, lastSearched: UInt64)
        case loading(Loading)
    }

    /// What a search of a user should do.
    enum Acquired {
        /// Search these.
        case loaded(UserVectors)
        /// Nobody has loaded the user: the caller loads them and hands the result to ``finishLoad``, or
        /// calls ``abandonLoad`` (failure, or the user does not fit and is streamed instead).
        case load(Loading)
    }

    private let monitor = Monitor()
    private var users: [String: Entry] = [:]
    private var clock: UInt64 = 0
    private var loads = 0
    private var evictions = 0
    private var streamed = 0

    /// Test seam: called by a loading connection after every ``loadChunkRows`` rows it read.
    var loadProgress: (@Sendable (_ userID: String, _ rows: Int) -> Void)?
    static let loadChunkRows = 1000

    init(dimension: Int, budgetBytes: Int, kernels: VectorKernels = .best) {
        self.dimension = dimension
        self.budgetBytes = max(0, budgetBytes)
        self.kernels = kernels
    }

    /// True when a user of `rows` vectors may be loaded at all (else they are streamed).
    func fits(rows: Int) -> Bool { UserVectors.estimatedBytes(rows: rows, dimension: dimension) <= budgetBytes }

    /// The user's vectors, or the job of loading them. While another search loads them, waits (until
    /// `deadline`: then DEADLINE_EXCEEDED).
    func acquire(_ userID: String, deadline: Deadline) throws(MemoryError) -> Acquired {
        try monitor.withLock { () throws(MemoryError) -> Acquired in
            while true {
                switch users[userID] {
                case .loaded(let vectors, _):
                    clock += 1
                    users[userID] = .loaded(vectors, lastSearched: clock)
                    return .loaded(vectors)
                case .loading:
                    guard monitor.wait(until: deadline) else {
                        throw .call(
                            .deadlineExceeded, "the call's deadline passed while another search loaded this user")
                    }
                case nil:
                    let loading = Loading()
                    users[userID] = .loading(loading)
                    return .load(loading)
                }
            }
        }
    }

    /// Installs a finished load: replays the changes committed meanwhile, then makes room in the budget by
    /// dropping the least recently searched other users.
    func finishLoad(_ userID: String, _ loading: Loading, _ vectors: UserVectors) {
        monitor.withLock {
            guard case .loading(let current) = users[userID], current === loading else { return }
            for change in loading.changes { Self.apply(change, to: vectors) }
            clock += 1
            users[userID] = .loaded(vectors, lastSearched: clock)
            loads += 1
            monitor.broadcast()
        }
        enforceBudget(keeping: userID)
    }

    /// Before a load of about `bytes`: drops least recently searched users until it fits next to the others,
    /// so that the budget holds while loading too (not only once the new user is in).
    func makeRoom(for bytes: Int, keeping userID: String) { enforceBudget(keeping: userID, reserving: bytes) }

    /// Gives a load up (it failed, or the user is streamed); waiting searches try themselves.
    func abandonLoad(_ userID: String, _ loading: Loading) {
        monitor.withLock {
            guard case .loading(let current) = users[userID], current === loading else { return }
            users[userID] = nil
            monitor.broadcast()
        }
    }

    /// Counts a search served by streaming (for HealthCheck).
    func countStreamedSearch() { monitor.withLock { streamed += 1 } }

    /// Applies committed changes. Users not loaded are skipped (a load reads them); users being loaded get
    /// them recorded for replay. Callers serialize this with their commits, so changes arrive in commit order.
    func apply(_ changes: [IndexChange]) {
        guard !changes.isEmpty else { return }
        var direct: [(UserVectors, IndexChange)] = []
        monitor.withLock {
            for change in changes {
                switch users[change.userID] {
                case .loaded(let vectors, _): direct.append((vectors, change))
                case .loading(let loading): loading.changes.append(change)
                case nil: continue
                }
            }
        }
        // Outside the monitor: a put waits for searches of that user to finish, and must not hold up others.
        for (vectors, change) in direct { Self.apply(change, to: vectors) }
        if direct.contains(where: { if case .put = $0.1 { true } else { false } }) { enforceBudget(keeping: nil) }
    }

    private static func apply(_ change: IndexChange, to vectors: UserVectors) {
        switch change {
        case .put(let v): vectors.put(v)
        case .remove(let id, _): vectors.remove(id: id)
        }
    }

    /// Drops least recently searched users until the loaded ones (plus `reserving` bytes) fit; `keeping`
    /// (being or just loaded) is never dropped here, even when alone over the budget (its estimate said it
    /// fits; the next load evicts it).
    private func enforceBudget(keeping: String?, reserving: Int = 0) {
        monitor.withLock {
            var total = reserving
            var candidates: [(userID: String, lastSearched: UInt64, bytes: Int)] = []
            for (userID, entry) in users {
                guard case .loaded(let vectors, let lastSearched) = entry else { continue }
                total += vectors.bytes
                if userID != keeping { candidates.append((userID, lastSearched, vectors.bytes)) }
            }
            guard total > budgetBytes else { return }
            candidates.sort { $0.lastSearched < $1.lastSearched }
            for c in candidates {
                guard total > budgetBytes else { break }
                users[c.userID] = nil
                total -= c.bytes
                evictions += 1
            }
        }
    }

    /// Figures for HealthCheck.
    struct Statistics {
        var bytes = 0
        var users = 0
        var vectors = 0
        var loading = 0
        var loads = 0
        var evictions = 0
        var streamedSearches = 0
    }

    var statistics: Statistics {
        monitor.withLock {
            var s = Statistics(loads: loads, evictions: evictions, streamedSearches: streamed)
            for entry in users.values {
                switch entry {
                case .loaded(let vectors, _):
                    s.users += 1
                    s.bytes += vectors.bytes
                    s.vectors += vectors.count
                case .loading: s.loading += 1
                }
            }
            return s
        }
    }

    /// The loaded vectors of a user, or nil (tests).
    func loadedVectors(for userID: String) -> UserVectors? {
        monitor.withLock {
            if case .loaded(let vectors, _) = users[userID] { return vectors }
            return nil
        }
    }

    func removeAll() {
        monitor.withLock {
            users.removeAll()
            monitor.broadcast()
        }
    }
}
