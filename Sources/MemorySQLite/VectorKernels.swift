import CKernels
import MemoryDomain

#if canImport(Glibc)
import Glibc
#endif

/// The scan kernels of a backend: by default the widest the CPU supports (AVX-512F, else AVX2+FMA, else the
/// portable vector-extension build); `sqlite.vector_kernel` (``SQLiteBackend``) or tests can force another,
/// e.g. the portable one. All kernels compute the same sums in a different order.
struct VectorKernels: @unchecked Sendable {
    enum Level: String, CaseIterable, Sendable {
        case portable, avx2, avx512

        var c: mk_level {
            switch self {
            case .portable: MK_PORTABLE
            case .avx2: MK_AVX2
            case .avx512: MK_AVX512
            }
        }

        var isSupported: Bool { mk_cpu_supports(c) != 0 }
    }

    typealias RowsKernel =
        @convention(c) (
            UnsafePointer<Float>?, Int, Int, UnsafePointer<Float>?, Int, UnsafeMutablePointer<Float>?
        ) -> Void

    let level: Level
    /// `out[i]` = row `i` · q.
    let dot: RowsKernel
    /// `out[i]` = ‖row `i` − q‖².
    let squaredDistance: RowsKernel

    /// The kernels of `level`, or nil when this CPU cannot run them.
    init?(_ level: Level) {
        guard level.isSupported, let dot = mk_dot_rows(level.c), let distance = mk_squared_distance_rows(level.c)
        else { return nil }
        self.level = level
        self.dot = dot
        self.squaredDistance = distance
    }

    /// The levels this CPU can run, narrowest first.
    static var supportedLevels: [Level] { Level.allCases.filter(\.isSupported) }

    /// The widest kernels this CPU runs.
    static let best = VectorKernels(supportedLevels.last ?? .portable) ?? VectorKernels(.portable)!

    /// The kernels `name` asks for: `auto` (the widest supported), `portable`, `avx2` or `avx512`.
    /// - Throws: `ValidationError` for an unknown name or one this CPU cannot run.
    static func named(_ name: String) throws(MemoryError) -> VectorKernels {
        if name == "auto" { return best }
        guard let level = Level(rawValue: name) else {
            throw .validation("vector_kernel \(Validation.show(name)) is not auto, portable, avx2 or avx512")
        }
        guard let kernels = VectorKernels(level) else {
            throw .validation(
                "vector_kernel \(name): this CPU cannot run it (it runs \(supportedLevels.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        return kernels
    }

    /// Raw scores of `count` rows into `out`: dot products, or squared distances for `.euclidean`.
    @inline(__always)
    func raw(
        _ rows: UnsafePointer<Float>, count: Int, stride: Int, query: UnsafePointer<Float>, measure: DistanceMeasure,
        into out: UnsafeMutablePointer<Float>
    ) {
        if measure == .euclidean {
            squaredDistance(rows, count, stride, query, stride, out)
        } else {
            dot(rows, count, stride, query, stride, out)
        }
    }
}

/// A query prepared for the kernels: zero-padded to the row stride, with its inverse norm for cosine.
struct PreparedQuery {
    let padded: [Float]
    let inverseNorm: Float
    let measure: DistanceMeasure

    init(_ query: [Float], stride: Int, measure: DistanceMeasure) {
        var padded = [Float](repeating: 0, count: stride)
        var squares: Float = 0
        for j in 0..<query.count {
            padded[j] = query[j]
            squares += query[j] * query[j]
        }
        self.padded = padded
        self.inverseNorm = squares > 0 ? 1 / squares.squareRoot() : 0
        self.measure = measure
    }

    /// The ranking score of a raw kernel result (higher is better). Euclidean ranks by −d² (the order of −d);
    /// final scores are recomputed exactly in double.
    @inline(__always)
    func rank(_ raw: Float, inverseRowNorm: Float) -> Float {
        switch measure {
        case .cosine: raw * inverseRowNorm * inverseNorm
        case .euclidean: -raw
        case .dotProduct: raw
        }
    }
}

/// 1/‖v‖ over the first `count` floats (0 for a zero vector, whose cosine is 0 as in `Scoring.score`).
@inline(__always)
func inverseNorm(_ v: UnsafePointer<Float>, count: Int) -> Float {
    var s: Float = 0
    for j in 0..<count { s += v[j] * v[j] }
    return s > 0 ? 1 / s.squareRoot() : 0
}

/// A bounded min-heap of the best `capacity` (score, row) pairs seen.
struct TopK {
    let capacity: Int
    private(set) var scores: [Float] = []
    private(set) var rows: [Int] = []

    init(capacity: Int) {
        self.capacity = capacity
        scores.reserveCapacity(capacity)
        rows.reserveCapacity(capacity)
    }

    /// The score a row must beat to enter (−∞ while not full).
    var threshold: Float { scores.count < capacity ? -.infinity : scores[0] }

    @inline(__always)
    mutating func offer(score: Float, row: Int) {
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
