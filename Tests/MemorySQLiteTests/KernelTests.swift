import Logging
import MemoryDomain
import XCTest

@testable import MemorySQLite

#if canImport(Glibc)
import Glibc
#endif

/// Every kernel this CPU runs agrees with the portable one on random data, and the choice can be forced.
final class KernelTests: XCTestCase {
    func testEverySupportedKernelAgreesWithThePortableOne() throws {
        let portable = try XCTUnwrap(VectorKernels(.portable))
        let levels = VectorKernels.supportedLevels
        XCTAssertTrue(levels.contains(.portable))
        #if arch(x86_64)
        // The machines this project runs on have AVX2 (docs/performance.md): the fast path must be tested.
        XCTAssertTrue(levels.contains(.avx2), "this CPU reports no AVX2+FMA")
        #endif
        var rng = SeededRandom(seed: 21)
        // Row counts around the four-row groups, strides with padding, dimensions of 16 and 768.
        for (dimension, count) in [(16, 1), (16, 7), (300, 4), (300, 13), (768, 37), (768, 1024)] {
            let stride = (dimension + 15) / 16 * 16
            var rows = [Float](repeating: 0, count: count * stride)
            for r in 0..<count {
                for j in 0..<dimension { rows[r * stride + j] = Float.random(in: -2...2, using: &rng) }
            }
            var query = [Float](repeating: 0, count: stride)
            for j in 0..<dimension { query[j] = Float.random(in: -2...2, using: &rng) }
            for measure in [DistanceMeasure.dotProduct, .euclidean] {
                let want = run(portable, rows, count, stride, query, measure)
                // The double-precision truth, to bound the portable kernel too.
                for r in 0..<count {
                    var exact: Double = 0
                    for j in 0..<dimension {
                        let a = Double(rows[r * stride + j]), b = Double(query[j])
                        exact += measure == .euclidean ? (a - b) * (a - b) : a * b
                    }
                    XCTAssertEqual(Double(want[r]), exact, accuracy: 1e-3 * max(1, abs(exact)))
                }
                for level in levels where level != .portable {
                    let got = run(try XCTUnwrap(VectorKernels(level)), rows, count, stride, query, measure)
                    for r in 0..<count {
                        XCTAssertEqual(
                            got[r], want[r], accuracy: 1e-4 * max(1, abs(want[r])),
                            "\(level) \(measure) dimension \(dimension) row \(r) of \(count)")
                    }
                }
            }
        }
    }

    func testTheKernelCanBeForced() throws {
        let widest = try XCTUnwrap(VectorKernels.supportedLevels.last)
        XCTAssertEqual(VectorKernels.best.level, widest)
        XCTAssertEqual(try VectorKernels.named("auto").level, widest)
        XCTAssertEqual(try VectorKernels.named("portable").level, .portable)
        for level in VectorKernels.Level.allCases {
            if level.isSupported {
                XCTAssertEqual(try VectorKernels.named(level.rawValue).level, level)
            } else {
                // A level the CPU lacks is refused, not silently replaced.
                XCTAssertThrowsError(try VectorKernels.named(level.rawValue))
            }
        }
        XCTAssertThrowsError(try VectorKernels.named("sse9"))
        // The backend's switch (sqlite.vector_kernel) reaches the index and its health figures.
        let directory = TestPaths.temporaryDirectory()
        defer { _ = system("rm -rf '\(directory)'") }
        let backend = try SQLiteBackend(
            dataDirectory: directory, namespace: "k", limits: Limits(embeddingDimension: 8), vectorKernel: "portable",
            logger: .init(label: "t"))
        defer { backend.shutdown() }
        XCTAssertEqual(backend.index.kernels.level, .portable)
        XCTAssertEqual(backend.statistics()["vector_kernel"], .string("portable"))
        XCTAssertThrowsError(
            try SQLiteBackend(
                dataDirectory: directory, namespace: "k", limits: Limits(embeddingDimension: 8), vectorKernel: "fast",
                logger: .init(label: "t")))
    }

    func testSearchGivesTheSameAnswerWithEveryKernel() {
        var rng = SeededRandom(seed: 8)
        let dimension = 96
        let levels = VectorKernels.supportedLevels
        let indexes = levels.map { UserVectors(dimension: dimension, kernels: VectorKernels($0)!) }
        for i in 0..<3000 {
            let v = IndexedVector(
                id: "r\(i)", userID: "u", persona: "", session: "", expiration: nil, embedding: rng.vector(dimension))
            for index in indexes { index.put(v) }
        }
        for measure in DistanceMeasure.allCases {
            let q = rng.vector(dimension)
            let answers = indexes.map {
                $0.search(q, measure: measure, topK: 20, persona: "", session: "", now: 0).map(\.id)
            }
            for (level, answer) in zip(levels, answers) { XCTAssertEqual(answer, answers[0], "\(level) \(measure)") }
        }
    }

    private func run(
        _ k: VectorKernels, _ rows: [Float], _ count: Int, _ stride: Int, _ query: [Float], _ measure: DistanceMeasure
    ) -> [Float] {
        var out = [Float](repeating: .nan, count: count)
        rows.withUnsafeBufferPointer { r in
            query.withUnsafeBufferPointer { q in
                out.withUnsafeMutableBufferPointer { o in
                    k.raw(
                        r.baseAddress!, count: count, stride: stride, query: q.baseAddress!, measure: measure,
                        into: o.baseAddress!)
                }
            }
        }
        return out
    }
}

/// The scan's helper threads: every part runs once, also when several scans arrive at once (the later ones
/// then run their parts themselves).
final class ScanPoolTests: XCTestCase {
    func testEveryPartRunsOnceUnderConcurrentScans() {
        let pool = ScanPool(helpers: 2)
        let scans = 6, parts = 7, rounds = 200
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: scans * parts)
        counts.initialize(repeating: 0, count: scans * parts)
        defer { counts.deallocate() }
        let shared = SharedCounts(base: counts)
        runOnThreads(scans) { scan in
            for _ in 0..<rounds {
                pool.run(parts: parts) { part in shared.base[scan * parts + part] += 1 }
            }
        }
        for i in 0..<scans * parts { XCTAssertEqual(counts[i], rounds, "scan \(i / parts) part \(i % parts)") }
    }

    /// `@unchecked Sendable`: each (scan, part) slot is written by one part at a time, and read after all end.
    struct SharedCounts: @unchecked Sendable {
        let base: UnsafeMutablePointer<Int>
    }
}
