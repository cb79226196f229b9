import MemoryCore

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
    private var matrix: [Float] = []
    /// 1/‖row‖ (0 for a zero row, whose cosine is 0 as in `Scoring.score`).
    private var inverseNorms: [Float] = []
    private var ids: [String] = []
    private var personas: [Int32] = []
    private var sessions: [Int32] = []
    private var expirations: [Int64] = []
    private var rowOf: [String: Int] = [:]
    /// Personas and sessions interned to small codes so the scan compares integers.
    private var codes: [String: Int32] = [:]

    init(dimension: Int) {
        self.dimension = dimension
        self.stride = (dimension + 15) / 16 * 16
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
    func search(_ query: [Float], measure: DistanceMeasure, topK: Int, persona: String, session: String,
                now: Int64) -> [(id: String, score: Double)] {
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
            let chunks = stride / 16
            matrix.withUnsafeBufferPointer { m in
                padded.withUnsafeBufferPointer { q in
                    let qp = UnsafeRawPointer(q.baseAddress!)
                    guard let base = m.baseAddress else { return }
                    let mp = UnsafeRawPointer(base)
                    for row in 0..<ids.count {
                        if personaCode >= 0 && personas[row] != personaCode { continue }
                        if sessionCode >= 0 && sessions[row] != sessionCode { continue }
                        if expirations[row] <= now { continue }
                        let rp = mp + row * stride * MemoryLayout<Float>.stride
                        let score: Float
                        switch measure {
                        case .dotProduct:
                            score = Kernels.dot(rp, qp, chunks: chunks)
                        case .cosine:
                            score = Kernels.dot(rp, qp, chunks: chunks) * inverseNorms[row] * inverseQueryNorm
                        case .euclidean:
                            score = -Kernels.squaredDistance(rp, qp, chunks: chunks).squareRoot()
                        }
                        heap.offer(score: score, row: Int32(row))
                    }
                }
            }
            // Rank by the fast float scores, report scores computed in double like `Scoring.score`, so both
            // backends and clients' brute force agree to the last digit.
            var results: [(id: String, score: Double)] = heap.rows.map { row in
                let r = Int(row)
                let exact = matrix.withUnsafeBufferPointer { m in
                    query.withUnsafeBufferPointer { q in
                        Scoring.score(UnsafeBufferPointer(rebasing: m[r * stride ..< r * stride + dimension]), q, measure: measure)
                    }
                }
                return (ids[r], exact)
            }
            results.sort { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }
            return results
        }
    }
}

/// The inner loops. Rows are multiples of 16 floats; two accumulators hide the add latency.
enum Kernels {
    @inline(__always)
    static func dot(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, chunks: Int) -> Float {
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        var i = 0
        while i + 2 <= chunks {
            let o = i &* 64
            acc0 += a.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) * b.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            acc1 += a.loadUnaligned(fromByteOffset: o &+ 64, as: SIMD16<Float>.self) * b.loadUnaligned(fromByteOffset: o &+ 64, as: SIMD16<Float>.self)
            i &+= 2
        }
        if i < chunks {
            let o = i &* 64
            acc0 += a.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) * b.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
        }
        return (acc0 + acc1).sum()
    }

    @inline(__always)
    static func squaredDistance(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, chunks: Int) -> Float {
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        var i = 0
        while i + 2 <= chunks {
            let o = i &* 64
            let d0 = a.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) - b.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            let d1 = a.loadUnaligned(fromByteOffset: o &+ 64, as: SIMD16<Float>.self) - b.loadUnaligned(fromByteOffset: o &+ 64, as: SIMD16<Float>.self)
            acc0 += d0 * d0
            acc1 += d1 * d1
            i &+= 2
        }
        if i < chunks {
            let o = i &* 64
            let d = a.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) - b.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            acc0 += d * d
        }
        return (acc0 + acc1).sum()
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
