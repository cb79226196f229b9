import CKernels
import Dispatch
import MemoryDomain

#if canImport(Glibc)
import Glibc
#endif

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
}

/// Exact nearest-neighbour search over every user's embeddings, kept in memory and shared by all
/// connections of a backend. Users are loaded lazily (by ``SQLiteBackend``) on their first search.
///
/// `@unchecked Sendable`: `users` is only touched under `lock`; each ``UserVectors`` guards itself.
final class EmbeddingIndex: @unchecked Sendable {
    let dimension: Int
    private let lock = Lock()
    private var users: [String: UserVectors] = [:]

    init(dimension: Int) { self.dimension = dimension }

    /// The loaded vectors of a user, or nil when not loaded yet.
    func vectors(for userID: String) -> UserVectors? { lock.withLock { users[userID] } }

    func install(_ vectors: UserVectors, for userID: String) { lock.withLock { users[userID] = vectors } }

    /// Applies committed changes. Users not loaded are skipped: they are read from the database when loaded.
    /// Callers serialize this with their commits, so the index sees changes in commit order.
    func apply(_ changes: [IndexChange]) {
        for change in changes {
            switch change {
            case .put(let v):
                guard let u = vectors(for: v.userID) else { continue }
                u.put(v)
            case .remove(let id, let userID):
                vectors(for: userID)?.remove(id: id)
            }
        }
    }

    var userCount: Int { lock.withLock { users.count } }
    var vectorCount: Int { lock.withLock { users.values.reduce(0) { $0 + $1.count } } }

    func removeAll() { lock.withLock { users.removeAll() } }
}

/// One user's embeddings as a contiguous row-major matrix of `stride` floats per row (the dimension rounded
/// up to 16, zero-padded) so that the scan is a tight SIMD loop without a tail, plus per-row filter data.
///
/// `@unchecked Sendable`: all state is guarded by `rw` (searches share it, writers take it alone).
final class UserVectors: @unchecked Sendable {
    let dimension: Int
    let stride: Int
    private let rw = ReadWriteLock()
    fileprivate var matrix: [Float] = []
    /// 1/‖row‖ (0 for a zero row, whose cosine is 0 as in `Scoring.score`).
    fileprivate var inverseNorms: [Float] = []
    fileprivate var ids: [String] = []
    fileprivate var personas: [Int32] = []
    fileprivate var sessions: [Int32] = []
    fileprivate var expirations: [Int64] = []
    private var rowOf: [String: Int] = [:]
    /// Personas and sessions interned to small codes so the scan compares integers.
    private var codes: [String: Int32] = [:]

    /// A scan gets one thread per this many floats (up to the core count); below it one thread is faster
    /// than the hand-off.
    let floatsPerThread: Int

    init(dimension: Int, floatsPerThread: Int = 4 << 20) {
        self.dimension = dimension
        self.stride = (dimension + 15) / 16 * 16
        self.floatsPerThread = max(1, floatsPerThread)
    }

    var count: Int { rw.withReadLock { ids.count } }

    private func code(_ s: String) -> Int32 {
        if let c = codes[s] { return c }
        let c = Int32(codes.count)
        codes[s] = c
        return c
    }

    /// Inserts or replaces a vector. One of the wrong length is dropped (it cannot be searched).
    func put(_ v: IndexedVector) {
        guard v.embedding.count == dimension else { return remove(id: v.id) }
        rw.withWriteLock {
            let row: Int
            if let existing = rowOf[v.id] {
                row = existing
            } else {
                row = ids.count
                matrix.append(contentsOf: repeatElement(0, count: stride))
                inverseNorms.append(0)
                ids.append(v.id)
                personas.append(0)
                sessions.append(0)
                expirations.append(0)
                rowOf[v.id] = row
            }
            var sumSquares: Float = 0
            matrix.withUnsafeMutableBufferPointer { m in
                for j in 0..<dimension {
                    m[row * stride + j] = v.embedding[j]
                    sumSquares += v.embedding[j] * v.embedding[j]
                }
            }
            inverseNorms[row] = sumSquares > 0 ? 1 / sumSquares.squareRoot() : 0
            personas[row] = code(v.persona)
            sessions[row] = code(v.session)
            expirations[row] = v.expiration ?? .max
        }
    }

    /// Removes a vector by moving the last row into its place.
    func remove(id: String) {
        rw.withWriteLock {
            guard let row = rowOf.removeValue(forKey: id) else { return }
            let last = ids.count - 1
            if row != last {
                matrix.withUnsafeMutableBufferPointer { m in
                    for j in 0..<stride { m[row * stride + j] = m[last * stride + j] }
                }
                inverseNorms[row] = inverseNorms[last]
                ids[row] = ids[last]
                personas[row] = personas[last]
                sessions[row] = sessions[last]
                expirations[row] = expirations[last]
                rowOf[ids[row]] = row
            }
            matrix.removeLast(stride)
            inverseNorms.removeLast()
            ids.removeLast()
            personas.removeLast()
            sessions.removeLast()
            expirations.removeLast()
        }
    }

    /// The ids of the `topK` best rows for `query` (best first), with exact scores as `Scoring.score` gives.
    /// Rows are prefiltered by persona and session (when non-empty) and skipped when expired at `now`.
    func search(
        _ query: [Float], measure: DistanceMeasure, topK: Int, persona: String, session: String,
        now: Int64
    ) -> [(id: String, score: Double)] {
        guard topK > 0, query.count == dimension else { return [] }
        var padded = [Float](repeating: 0, count: stride)
        var querySquares: Float = 0
        for j in 0..<dimension {
            padded[j] = query[j]
            querySquares += query[j] * query[j]
        }
        let inverseQueryNorm: Float = querySquares > 0 ? 1 / querySquares.squareRoot() : 0

        return rw.withReadLock {
            var personaCode: Int32 = -1, sessionCode: Int32 = -1
            if !persona.isEmpty {
                guard let c = codes[persona] else { return [] }
                personaCode = c
            }
            if !session.isEmpty {
                guard let c = codes[session] else { return [] }
                sessionCode = c
            }
            var heap = TopK(capacity: topK)
            scan(
                padded, measure: measure, personaCode: personaCode, sessionCode: sessionCode, now: now,
                inverseQueryNorm: inverseQueryNorm, into: &heap)
            // Rank by the fast float scores, report scores computed in double like `Scoring.score`, so both
            // backends and clients' brute force agree to the last digit.
            var results: [(id: String, score: Double)] = heap.rows.map { row in
                let r = Int(row)
                let exact = matrix.withUnsafeBufferPointer { m in
                    query.withUnsafeBufferPointer { q in
                        Scoring.score(
                            UnsafeBufferPointer(rebasing: m[r * stride..<r * stride + dimension]), q, measure: measure)
                    }
                }
                return (ids[r], exact)
            }
            results.sort { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }
            return results
        }
    }
}

extension UserVectors {
    /// The hot loop, called with the read lock held. A large matrix is split over the cores, each part
    /// keeping its own top-k, merged at the end.
    fileprivate func scan(
        _ query: [Float], measure: DistanceMeasure, personaCode: Int32, sessionCode: Int32, now: Int64,
        inverseQueryNorm: Float, into heap: inout TopK
    ) {
        let rows = ids.count
        guard rows > 0 else { return }
        let parts = max(1, min(Self.cores, rows * stride / floatsPerThread))
        if parts == 1 {
            scan(
                0..<rows, query, measure: measure, personaCode: personaCode, sessionCode: sessionCode, now: now,
                inverseQueryNorm: inverseQueryNorm, into: &heap)
            return
        }
        var partial = [TopK](repeating: TopK(capacity: heap.capacity), count: parts)
        partial.withUnsafeMutableBufferPointer { buffer in
            let heaps = PartHeaps(base: buffer.baseAddress!)
            let per = (rows + parts - 1) / parts
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let range = min(rows, part * per)..<min(rows, (part + 1) * per)
                self.scan(
                    range, query, measure: measure, personaCode: personaCode, sessionCode: sessionCode, now: now,
                    inverseQueryNorm: inverseQueryNorm, into: &heaps.base[part])
            }
        }
        for part in partial { heap.merge(part) }
    }

    static let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// Scans `range` four rows at a time (the query is loaded once per four rows, which is what bounds a
    /// scan without AVX), then the remaining rows one by one. Raw pointers keep bounds checks and
    /// retain/release traffic out of the loop; the measure is switched on once, outside it.
    private func scan(
        _ range: Range<Int>, _ query: [Float], measure: DistanceMeasure, personaCode: Int32,
        sessionCode: Int32, now: Int64, inverseQueryNorm: Float, into heap: inout TopK
    ) {
        let rowBytes = stride * MemoryLayout<Float>.stride
        let sixteens = stride / 16
        matrix.withUnsafeBytes { m in
            query.withUnsafeBytes { q in
                inverseNorms.withUnsafeBufferPointer { inv in
                    personas.withUnsafeBufferPointer { per in
                        sessions.withUnsafeBufferPointer { ses in
                            expirations.withUnsafeBufferPointer { exp in
                                let mp = m.baseAddress!, qp = q.baseAddress!
                                @inline(__always) func keep(_ row: Int) -> Bool {
                                    (personaCode < 0 || per[row] == personaCode)
                                        && (sessionCode < 0 || ses[row] == sessionCode) && exp[row] > now
                                }
                                @inline(__always) func offer(_ raw: Float, _ row: Int) {
                                    // Euclidean is ranked by -d² (same order as -d); scores are recomputed exactly afterwards.
                                    let score =
                                        measure == .cosine
                                        ? raw * inv[row] * inverseQueryNorm : (measure == .euclidean ? -raw : raw)
                                    heap.offer(score: score, row: Int32(truncatingIfNeeded: row))
                                }
                                let euclidean = measure == .euclidean
                                var row = range.lowerBound
                                while row &+ 4 <= range.upperBound {
                                    let k0 = keep(row), k1 = keep(row &+ 1), k2 = keep(row &+ 2), k3 = keep(row &+ 3)
                                    if k0 || k1 || k2 || k3 {
                                        let base = mp + row &* rowBytes
                                        var s = SIMD4<Float>()
                                        withUnsafeMutableBytes(of: &s) { out in
                                            let o = out.baseAddress!.assumingMemoryBound(to: Float.self)
                                            let r = base.assumingMemoryBound(to: Float.self),
                                                qf = qp.assumingMemoryBound(to: Float.self)
                                            if euclidean {
                                                mk_squared_distance4(r, stride, qf, stride, o)
                                            } else {
                                                mk_dot4(r, stride, qf, stride, o)
                                            }
                                        }
                                        if k0 { offer(s[0], row) }
                                        if k1 { offer(s[1], row &+ 1) }
                                        if k2 { offer(s[2], row &+ 2) }
                                        if k3 { offer(s[3], row &+ 3) }
                                    }
                                    row &+= 4
                                }
                                while row < range.upperBound {
                                    if keep(row) {
                                        let base = mp + row &* rowBytes
                                        offer(
                                            euclidean
                                                ? Kernels.squaredDistance(base, qp, chunks: sixteens)
                                                : Kernels.dot(base, qp, chunks: sixteens), row)
                                    }
                                    row &+= 1
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The per-part heaps of a parallel scan. `@unchecked Sendable`: part `i` writes only `base[i]`, and the
/// buffer outlives `concurrentPerform`, which returns only when every part is done.
private struct PartHeaps: @unchecked Sendable {
    let base: UnsafeMutablePointer<TopK>
}

/// The single-row inner loops (the four-row ones are `mk_dot4` / `mk_squared_distance4` in CKernels). Rows
/// are multiples of 16 floats; four independent accumulators hide the add latency.
enum Kernels {
    @inline(__always)
    static func dot(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, chunks: Int) -> Float {
        @inline(__always) func product(_ o: Int) -> SIMD16<Float> {
            a.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
                * b.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
        }
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>(), acc2 = SIMD16<Float>(), acc3 = SIMD16<Float>()
        var i = 0
        while i &+ 4 <= chunks {
            let o = i &* 64
            acc0 += product(o)
            acc1 += product(o &+ 64)
            acc2 += product(o &+ 128)
            acc3 += product(o &+ 192)
            i &+= 4
        }
        while i < chunks {
            acc0 += product(i &* 64)
            i &+= 1
        }
        return ((acc0 + acc1) + (acc2 + acc3)).sum()
    }

    @inline(__always)
    static func squaredDistance(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, chunks: Int) -> Float {
        @inline(__always) func square(_ o: Int) -> SIMD16<Float> {
            let d =
                a.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
                - b.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            return d * d
        }
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>(), acc2 = SIMD16<Float>(), acc3 = SIMD16<Float>()
        var i = 0
        while i &+ 4 <= chunks {
            let o = i &* 64
            acc0 += square(o)
            acc1 += square(o &+ 64)
            acc2 += square(o &+ 128)
            acc3 += square(o &+ 192)
            i &+= 4
        }
        while i < chunks {
            acc0 += square(i &* 64)
            i &+= 1
        }
        return ((acc0 + acc1) + (acc2 + acc3)).sum()
    }
}

/// A bounded min-heap of the best `capacity` (score, row) pairs seen.
struct TopK {
    let capacity: Int
    private var scores: [Float] = []
    private(set) var rows: [Int32] = []

    init(capacity: Int) {
        self.capacity = capacity
        scores.reserveCapacity(capacity)
        rows.reserveCapacity(capacity)
    }

    @inline(__always)
    mutating func offer(score: Float, row: Int32) {
        if scores.count < capacity {
            scores.append(score)
            rows.append(row)
            siftUp(scores.count - 1)
        } else if score > scores[0] {
            scores[0] = score
            rows[0] = row
            siftDown(0)
        }
    }

    /// Offers every entry of another heap.
    mutating func merge(_ other: TopK) {
        for (score, row) in zip(other.scores, other.rows) { offer(score: score, row: row) }
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            guard scores[i] < scores[parent] else { return }
            scores.swapAt(i, parent)
            rows.swapAt(i, parent)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = scores.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < n && scores[l] < scores[smallest] { smallest = l }
            if r < n && scores[r] < scores[smallest] { smallest = r }
            guard smallest != i else { return }
            scores.swapAt(i, smallest)
            rows.swapAt(i, smallest)
            i = smallest
        }
    }
}
