import MemoryDomain
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One user's embeddings: rows of `stride` floats (the dimension rounded up to 16, zero-padded, so the
/// kernels need no tail) in fixed blocks of ``rowsPerBlock`` rows, plus per-row filter data. Blocks mean that
/// growing never copies the matrix (no 2× peak while loading or adding), and an emptied block is freed.
///
/// `@unchecked Sendable`: all state is guarded by `rw` (searches share it, writers take it alone; writers
/// are preferred, so a stream of searches cannot starve them); `accountedBytes` is atomic.
final class UserVectors: @unchecked Sendable {
    let dimension: Int
    let stride: Int
    /// 1024 rows: 3 MiB at 768 floats, so a small user wastes little and a large one has few blocks.
    static let rowsPerBlock = 1024

    private let rw = ReadWriteLock()
    private var blocks: [UnsafeMutablePointer<Float>] = []
    /// 1/‖row‖ (0 for a zero row, whose cosine is 0 as in `Scoring.score`).
    private var inverseNorms: [Float] = []
    private var ids: [String] = []
    private var personas: [Int32] = []
    private var sessions: [Int32] = []
    /// Microseconds; `Int64.max` = never.
    private var expirations: [Int64] = []
    private var rowOf: [String: Int] = [:]
    /// Personas and sessions interned to small codes so the scan compares integers.
    private var codes: [String: Int32] = [:]
    private let accountedBytes = Atomic<Int>(0)
    private let rows = Atomic<Int>(0)

    /// A scan gets one thread per this many floats (up to the core count); below it one thread is faster
    /// than the hand-off.
    let floatsPerThread: Int
    let kernels: VectorKernels

    /// - Parameter reservingRows: the expected row count (a load counts first), so the side tables are
    ///   allocated once instead of doubling.
    init(
        dimension: Int, reservingRows: Int = 0, floatsPerThread: Int = 1 << 20,
        kernels: VectorKernels = .best
    ) {
        self.dimension = dimension
        self.stride = (dimension + 15) / 16 * 16
        self.floatsPerThread = max(1, floatsPerThread)
        self.kernels = kernels
        if reservingRows > 0 {
            inverseNorms.reserveCapacity(reservingRows)
            ids.reserveCapacity(reservingRows)
            personas.reserveCapacity(reservingRows)
            sessions.reserveCapacity(reservingRows)
            expirations.reserveCapacity(reservingRows)
            rowOf.reserveCapacity(reservingRows)
            blocks.reserveCapacity((reservingRows + Self.rowsPerBlock - 1) / Self.rowsPerBlock)
        }
    }

    deinit {
        for b in blocks { Self.freeBlock(b, dimension: dimension) }
    }

    /// Blocks come straight from mmap: zero-filled, and given back to the kernel when freed (an evicted user's
    /// memory leaves the process instead of staying in malloc's arenas).
    private static func allocateBlock(dimension: Int) -> UnsafeMutablePointer<Float> {
        let bytes = blockBytes(dimension: dimension)
        let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else { fatalError("mmap of a \(bytes)-byte index block failed: errno \(errno)") }
        return p.bindMemory(to: Float.self, capacity: bytes / 4)
    }

    private static func freeBlock(_ block: UnsafeMutablePointer<Float>, dimension: Int) {
        munmap(block, blockBytes(dimension: dimension))
    }

    /// Without the lock (a health check must not queue behind a writer).
    var count: Int { rows.load(ordering: .relaxed) }

    /// What this user costs in memory, as the budget counts it: the blocks plus the per-row tables.
    var bytes: Int { accountedBytes.load(ordering: .relaxed) }

    /// Bytes per row besides the matrix: norm, persona, session, expiration (20), the id's array slot (16),
    /// its dictionary entry (~48 at the dictionary's load factor) and the id's own heap storage (~64 for a
    /// `mem_<uuid>`). Measured against RSS in docs/reliability.md.
    static let bytesPerRowBesidesMatrix = 148

    static func blockBytes(dimension: Int) -> Int { rowsPerBlock * ((dimension + 15) / 16 * 16) * 4 }

    /// What ``bytes`` will be for `rows` rows: used to decide, from a count, whether a user fits the budget.
    static func estimatedBytes(rows: Int, dimension: Int) -> Int {
        (rows + rowsPerBlock - 1) / rowsPerBlock * blockBytes(dimension: dimension) + rows * bytesPerRowBesidesMatrix
    }

    private func updateAccounting() {
        rows.store(ids.count, ordering: .relaxed)
        accountedBytes.store(
            blocks.count * Self.blockBytes(dimension: dimension) + ids.count * Self.bytesPerRowBesidesMatrix,
            ordering: .relaxed)
    }

    @inline(__always)
    private func rowPointer(_ row: Int) -> UnsafeMutablePointer<Float> {
        blocks[row / Self.rowsPerBlock] + (row % Self.rowsPerBlock) * stride
    }

    private func code(_ s: String) -> Int32 {
        if let c = codes[s] { return c }
        let c = Int32(codes.count)
        codes[s] = c
        return c
    }

    /// Inserts or replaces a vector. One of the wrong length is dropped (it cannot be searched).
    func put(_ v: IndexedVector) {
        guard v.embedding.count == dimension else { return remove(id: v.id) }
        v.embedding.withUnsafeBufferPointer { e in
            put(id: v.id, persona: v.persona, session: v.session, expiration: v.expiration, embedding: e.baseAddress!)
        }
    }

    /// Inserts or replaces a vector of `dimension` floats at `embedding`.
    func put(id: String, persona: String, session: String, expiration: Int64?, embedding: UnsafePointer<Float>) {
        rw.withWriteLock {
            let row: Int
            if let existing = rowOf[id] {
                row = existing
            } else {
                row = ids.count
                if row == blocks.count * Self.rowsPerBlock { blocks.append(Self.allocateBlock(dimension: dimension)) }
                inverseNorms.append(0)
                ids.append(id)
                personas.append(0)
                sessions.append(0)
                expirations.append(0)
                rowOf[id] = row
            }
            // Only the first `dimension` floats are written: the padding of a block stays zero.
            rowPointer(row).update(from: embedding, count: dimension)
            inverseNorms[row] = inverseNorm(embedding, count: dimension)
            personas[row] = code(persona)
            sessions[row] = code(session)
            expirations[row] = expiration ?? .max
            updateAccounting()
        }
    }

    /// Removes a vector by moving the last row into its place; frees the last block once it is empty.
    func remove(id: String) {
        rw.withWriteLock {
            guard let row = rowOf.removeValue(forKey: id) else { return }
            let last = ids.count - 1
            if row != last {
                rowPointer(row).update(from: rowPointer(last), count: stride)
                inverseNorms[row] = inverseNorms[last]
                ids[row] = ids[last]
                personas[row] = personas[last]
                sessions[row] = sessions[last]
                expirations[row] = expirations[last]
                rowOf[ids[row]] = row
            }
            // The vacated row is zeroed so that a block's unused rows and padding stay zero.
            rowPointer(last).update(repeating: 0, count: stride)
            inverseNorms.removeLast()
            ids.removeLast()
            personas.removeLast()
            sessions.removeLast()
            expirations.removeLast()
            if last % Self.rowsPerBlock == 0 { Self.freeBlock(blocks.removeLast(), dimension: dimension) }
            updateAccounting()
        }
    }

    /// The ids of the `topK` best rows for `query` (best first), with exact scores as `Scoring.score` gives.
    /// Rows are prefiltered by persona and session (when non-empty) and skipped when expired at `now`.
    func search(
        _ query: [Float], measure: DistanceMeasure, topK: Int, persona: String, session: String, now: Int64
    ) -> [(id: String, score: Double)] {
        guard topK > 0, query.count == dimension else { return [] }
        let prepared = PreparedQuery(query, stride: stride, measure: measure)
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
            let heap = scan(prepared, personaCode: personaCode, sessionCode: sessionCode, now: now, topK: topK)
            // Ranked by the fast float scores; reported with scores computed in double like `Scoring.score`,
            // so both backends and clients' brute force agree to the last digit.
            var results: [(id: String, score: Double)] = heap.rows.map { row in
                query.withUnsafeBufferPointer { q in
                    (
                        ids[row],
                        Scoring.score(
                            UnsafeBufferPointer(start: rowPointer(row), count: dimension), q, measure: measure)
                    )
                }
            }
            results.sort { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }
            return results
        }
    }

    static let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// The scan, called with the read lock held: blocks are split over the cores when the matrix is large,
    /// each part keeping its own top-k, merged at the end.
    private func scan(_ query: PreparedQuery, personaCode: Int32, sessionCode: Int32, now: Int64, topK: Int) -> TopK {
        let rows = ids.count
        var heap = TopK(capacity: topK)
        guard rows > 0 else { return heap }
        let parts = max(1, min(Self.cores, blocks.count, rows * stride / floatsPerThread))
        if parts == 1 {
            scan(blocks: 0..<blocks.count, query, personaCode, sessionCode, now, into: &heap)
            return heap
        }
        var partial = [TopK](repeating: TopK(capacity: topK), count: parts)
        partial.withUnsafeMutableBufferPointer { buffer in
            let heaps = buffer.baseAddress!
            let per = (blocks.count + parts - 1) / parts
            ScanPool.shared.run(parts: parts) { part in
                let range = min(blocks.count, part * per)..<min(blocks.count, (part + 1) * per)
                self.scan(blocks: range, query, personaCode, sessionCode, now, into: &heaps[part])
            }
        }
        for part in partial { heap.merge(part) }
        return heap
    }

    /// One kernel call per block computes every row's raw score; the filters and the heap look only at rows
    /// that would enter it.
    private func scan(
        blocks range: Range<Int>, _ query: PreparedQuery, _ personaCode: Int32, _ sessionCode: Int32, _ now: Int64,
        into heap: inout TopK
    ) {
        let rows = ids.count
        var raw = [Float](repeating: 0, count: Self.rowsPerBlock)
        raw.withUnsafeMutableBufferPointer { out in
            query.padded.withUnsafeBufferPointer { q in
                inverseNorms.withUnsafeBufferPointer { inv in
                    personas.withUnsafeBufferPointer { per in
                        sessions.withUnsafeBufferPointer { ses in
                            expirations.withUnsafeBufferPointer { exp in
                                for b in range {
                                    let first = b * Self.rowsPerBlock
                                    let n = min(Self.rowsPerBlock, rows - first)
                                    guard n > 0 else { break }
                                    kernels.raw(
                                        blocks[b], count: n, stride: stride, query: q.baseAddress!,
                                        measure: query.measure, into: out.baseAddress!)
                                    for i in 0..<n {
                                        let row = first &+ i
                                        let score = query.rank(out[i], inverseRowNorm: inv[row])
                                        guard score > heap.threshold, exp[row] > now,
                                            personaCode < 0 || per[row] == personaCode,
                                            sessionCode < 0 || ses[row] == sessionCode
                                        else { continue }
                                        heap.offer(score: score, row: row)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
