import ArgumentParser
import Logging
import MemoryClient
import MemoryDomain
import MemorySQLite
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// Exact top-10 over N × D random embeddings: through memoryd (SemanticSearch on the sqlite backend), directly
/// through the sqlite backend in this process (the same index, no socket), and numpy brute force on the same
/// vectors (written to a file for it). All in one run, queries one after another.
struct Vector: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Exact top-k search on sqlite: memoryd and the in-process index vs numpy brute force.")

    @Option(help: "memoryd's socket (a sqlite daemon).") var socket: String
    @Option(help: "Vectors.") var count = 100_000
    @Option(help: "Dimension (memoryd's embedding_dimension).") var dimension = 768
    @Option(help: "Timed queries.") var queries = 30
    @Option(help: "k") var topK = 10
    @Option(help: "Scratch directory for the vector files and the in-process sqlite database.") var workDir: String
    @Option(help: "Python with numpy and threadpoolctl (empty = skip numpy).") var python = ""
    @Option(help: "The numpy script.") var numpyScript = "scripts/bench-tools/numpy_topk.py"
    @Flag(help: "Skip the in-process (direct) figure.") var skipDirect = false
    @Option(help: "Append JSON lines here.") var jsonOut: String?

    func run() throws {
        let log = ResultLog(path: jsonOut)
        var rng = SplitMix64(seed: 42)
        let t0 = nowNanos()
        var matrix = [Float](repeating: 0, count: count * dimension)
        for i in 0..<matrix.count { matrix[i] = rng.nextFloat() }
        var qs: [[Float]] = []
        for _ in 0..<queries { qs.append(rng.vector(dimension)) }
        try writeFloats(workDir + "/vectors.f32", matrix)
        try writeFloats(workDir + "/queries.f32", qs.flatMap { $0 })
        print(
            "vector: \(count) x \(dimension) float32 (\(count * dimension * 4 / 1_048_576) MiB), \(queries) queries, top-\(topK); generated in \(fmt(Double(nowNanos() - t0) / 1e9, 1)) s"
        )

        func items(_ range: Range<Int>) -> [MemoryItem] {
            range.map { i in
                MemoryItem(
                    id: "vec_\(i)", userID: "vec", sessionID: "s", textContent: "v\(i)",
                    embedding: Array(matrix[(i * dimension)..<((i + 1) * dimension)]))
            }
        }

        // memoryd: load with AddMemoryItems (1000 per call, a few in flight), then time the queries.
        let client = try waitForDaemon(socket)
        let conn = client.connection
        let tl = nowNanos()
        var pending: [UInt64] = []
        var start = 0
        while start < count || !pending.isEmpty {
            while start < count && pending.count < 3 {
                let end = min(count, start + 1000)
                pending.append(
                    try conn.start(.addMemoryItems(items: items(start..<end), upsert: true), timeoutMs: 600_000))
                start = end
            }
            let r = try conn.wait(pending.removeFirst(), method: .addMemoryItems)
            if case .addMemoryItems(let results) = r, let bad = results.first(where: { $0.error != nil }) {
                throw BenchError("AddMemoryItems failed: \(bad.error!)")
            }
        }
        let loadSeconds = Double(nowNanos() - tl) / 1e9
        print(
            "  memoryd: loaded in \(fmt(loadSeconds, 1)) s (\(fmt(Double(count) / loadSeconds, 0)) items/s through AddMemoryItems)"
        )
        let request = { (q: [Float]) in SearchRequest(userID: "vec", queryEmbedding: q, topK: UInt32(topK)) }
        _ = try client.semanticSearch(request(qs[0]))  // warm
        var daemonTimes: [UInt64] = []
        var daemonIDs: [[String]] = []
        for q in qs {
            let t = nowNanos()
            let r = try client.semanticSearch(request(q))
            daemonTimes.append(nowNanos() - t)
            daemonIDs.append(r.map(\.item.id))
        }
        let daemon = Percentiles(daemonTimes)
        print(
            "  memoryd SemanticSearch over the socket: median \(fmt(daemon.p50 / 1000, 2)) ms, mean \(fmt(daemon.mean / 1000, 2)) ms per query"
        )
        log.write([
            "kind": .string("vector"), "system": .string("memoryd"), "median_ms": .number(daemon.p50 / 1000),
            "mean_ms": .number(daemon.mean / 1000), "count": .number(Double(count)), "load_s": .number(loadSeconds),
        ])

        // The same backend in this process: no socket, no protobuf, same index and sqlite reads.
        var direct: Percentiles?
        if !skipDirect {
            var logger = Logger(label: "bench")
            logger.logLevel = .warning
            let limits = Limits(embeddingDimension: dimension)
            let backend = try SQLiteBackend(
                dataDirectory: workDir + "/direct", namespace: "bench", limits: limits, logger: logger)
            let service = MemoryService(
                store: try backend.makeConnection(), limits: limits, version: "bench", startedAtUptimeNanos: 0,
                healthFigures: { .init(backend: "sqlite", firestore: false, details: [:]) })
            var s = 0
            while s < count {
                let e = min(count, s + 1000)
                _ = try service.handle(.addMemoryItems(items: items(s..<e), upsert: true), context: CallContext())
                s = e
            }
            _ = try service.handle(.semanticSearch(request(qs[0])), context: CallContext())
            var times: [UInt64] = []
            for q in qs {
                let t = nowNanos()
                _ = try service.handle(.semanticSearch(request(q)), context: CallContext())
                times.append(nowNanos() - t)
            }
            direct = Percentiles(times)
            print(
                "  sqlite backend in-process (MemoryService.handle): median \(fmt(direct!.p50 / 1000, 2)) ms, mean \(fmt(direct!.mean / 1000, 2)) ms per query"
            )
            log.write([
                "kind": .string("vector"), "system": .string("memoryd-inprocess"),
                "median_ms": .number(direct!.p50 / 1000),
                "mean_ms": .number(direct!.mean / 1000), "count": .number(Double(count)),
            ])
            backend.shutdown()
        }

        guard !python.isEmpty else { return }
        // numpy, with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset so that OpenBLAS picks its own kernel.
        let out = try runShell(
            "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE '\(python)' '\(numpyScript)' '\(workDir)/vectors.f32' '\(workDir)/queries.f32' \(count) \(dimension) \(queries) \(topK)"
        )
        guard let line = out.split(separator: "\n").last, let json = try? JSONValue.parse(String(line)) else {
            throw BenchError("numpy script printed no JSON:\n\(out)")
        }
        let npMedian = json["median_ms"]?.numberValue ?? .nan
        let npIDs = (json["top"]?.arrayValue ?? []).map {
            ($0.arrayValue ?? []).map { "vec_\(Int($0.numberValue ?? -1))" }
        }
        var overlap = 0, total = 0
        for (a, b) in zip(daemonIDs, npIDs) {
            overlap += Set(a).intersection(b).count
            total += topK
        }
        let ratio = daemon.p50 / 1000 / npMedian
        print(
            "  numpy (\(json["blas"]?.stringValue ?? "?")): median \(fmt(npMedian, 2)) ms, mean \(fmt(json["mean_ms"]?.numberValue ?? .nan, 2)) ms per query"
        )
        print("  same top-\(topK) as numpy: \(overlap)/\(total) ids")
        print(
            "  memoryd / numpy = \(fmt(ratio, 2))x (target <= 1.5x: \(ratio <= 1.5 ? "MET" : "MISSED"))"
                + (direct.map { "; in-process / numpy = \(fmt($0.p50 / 1000 / npMedian, 2))x" } ?? ""))
        log.write([
            "kind": .string("vector"), "system": .string("numpy"), "median_ms": .number(npMedian),
            "mean_ms": .number(json["mean_ms"]?.numberValue ?? 0), "blas": .string(json["blas"]?.stringValue ?? ""),
            "count": .number(Double(count)), "same_ids": .number(Double(overlap)), "ids_total": .number(Double(total)),
        ])
        if overlap * 100 < total * 99 {
            throw BenchError("memoryd and numpy disagree on the top-\(topK) (\(overlap)/\(total))")
        }
    }

    func writeFloats(_ path: String, _ values: [Float]) throws {
        guard let f = fopen(path, "w") else { throw BenchError("cannot write \(path)") }
        defer { fclose(f) }
        let n = values.withUnsafeBufferPointer { fwrite($0.baseAddress, 4, $0.count, f) }
        guard n == values.count else { throw BenchError("short write to \(path)") }
    }
}
