import ArgumentParser
import Logging
import MemoryClient
import MemoryDomain
import MemorySQLite
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// Exact top-k over N × D random embeddings per user: through memoryd (SemanticSearch on the sqlite
/// backend), directly through the sqlite backend in this process (the same code, no socket; optionally on
/// memoryd's own database file with another index budget), and numpy brute force on the same vectors
/// (written to a file for it). All in one run, queries one after another. Reports load time, first-search
/// (the index load or a streamed scan) and warm-search latency, and memoryd's RSS.
struct Vector: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Exact top-k search on sqlite: memoryd and the in-process index vs numpy brute force.")

    @Option(help: "memoryd's socket (a sqlite daemon).") var socket: String
    @Option(help: "memoryd's pid, for its RSS (0 = not measured).") var pid: Int32 = 0
    @Option(name: [.customLong("items"), .customLong("count")], help: "Vectors per user.") var count = 100_000
    @Option(help: "Users, each with --items vectors (numpy compares the first).") var users = 1
    @Option(help: "Dimension (memoryd's embedding_dimension).") var dimension = 768
    @Option(help: "Timed queries per user.") var queries = 30
    @Option(help: "k") var topK = 10
    @Option(help: "Scratch directory for the vector files and the in-process sqlite database.") var workDir: String
    @Option(help: "Python with numpy and threadpoolctl (empty = skip numpy).") var python = ""
    @Option(help: "The numpy script.") var numpyScript = "scripts/bench-tools/numpy_topk.py"
    @Flag(help: "Skip the in-process (direct) figure.") var skipDirect = false
    @Option(help: "Run the in-process figure on this data directory (memoryd's: no second load) instead of a new one.")
    var directDataDir: String?
    @Option(help: "The in-process backend's index budget, MiB (memoryd's is its sqlite.index_memory_mb).")
    var directIndexMb = SQLiteBackend.defaultIndexMemoryMB
    @Flag(help: "memoryd already holds these vectors (an earlier run on the same data directory): skip the load.")
    var skipLoad = false
    @Option(help: "Append JSON lines here.") var jsonOut: String?

    func run() throws {
        let log = ResultLog(path: jsonOut)
        var rng = SplitMix64(seed: 42)
        let t0 = nowNanos()
        // User 0's vectors are the numpy data set; the others are generated on the fly while loading.
        var matrix = [Float](repeating: 0, count: count * dimension)
        for i in 0..<matrix.count { matrix[i] = rng.nextFloat() }
        var qs: [[Float]] = []
        for _ in 0..<queries { qs.append(rng.vector(dimension)) }
        if !python.isEmpty {
            try writeFloats(workDir + "/vectors.f32", matrix)
            try writeFloats(workDir + "/queries.f32", qs.flatMap { $0 })
        }
        print(
            "vector: \(users) user(s) x \(count) x \(dimension) float32 (\(users * count * dimension * 4 / 1_048_576) MiB), \(queries) queries per user, top-\(topK); generated in \(fmt(Double(nowNanos() - t0) / 1e9, 1)) s"
        )

        func userID(_ u: Int) -> String { users == 1 ? "vec" : "vec\(u)" }
        func items(_ u: Int, _ range: Range<Int>, _ other: inout SplitMix64) -> [MemoryItem] {
            range.map { i in
                MemoryItem(
                    id: users == 1 ? "vec_\(i)" : "vec\(u)_\(i)", userID: userID(u), sessionID: "s",
                    textContent: "v\(i)",
                    embedding: u == 0 ? Array(matrix[(i * dimension)..<((i + 1) * dimension)]) : other.vector(dimension)
                )
            }
        }
        func rss() -> String {
            guard pid > 0 else { return "" }
            let r = residentKiB(pid: pid)
            return "memoryd RSS \(fmt(Double(r.rss) / 1024, 0)) MiB (peak \(fmt(Double(r.hwm) / 1024, 0)) MiB)"
        }

        // memoryd: load with AddMemoryItems (1000 per call, a few in flight), then time the queries.
        let client = try waitForDaemon(socket)
        let conn = client.connection
        let tl = nowNanos()
        for u in 0..<users where !skipLoad {
            var other = SplitMix64(seed: 1000 + UInt64(u))
            var pending: [UInt64] = []
            var start = 0
            while start < count || !pending.isEmpty {
                while start < count && pending.count < 3 {
                    let end = min(count, start + 1000)
                    pending.append(
                        try conn.start(
                            .addMemoryItems(items: items(u, start..<end, &other), upsert: true), timeoutMs: 600_000))
                    start = end
                }
                let r = try conn.wait(pending.removeFirst(), method: .addMemoryItems)
                if case .addMemoryItems(let results) = r, let bad = results.first(where: { $0.error != nil }) {
                    throw BenchError("AddMemoryItems failed: \(bad.error!)")
                }
            }
        }
        let loadSeconds = Double(nowNanos() - tl) / 1e9
        let total = users * count
        print(
            skipLoad
                ? "  memoryd: load skipped (\(total) items already stored); \(rss())"
                : "  memoryd: loaded \(total) items in \(fmt(loadSeconds, 1)) s (\(fmt(Double(total) / loadSeconds, 0)) items/s through AddMemoryItems); \(rss())"
        )
        let request = { (u: Int, q: [Float]) in SearchRequest(userID: userID(u), queryEmbedding: q, topK: UInt32(topK))
        }
        // First search of each user: loads the user into the index, or streams them when over the budget.
        var firstMs: [Double] = []
        for u in 0..<users {
            let t = nowNanos()
            _ = try client.semanticSearch(request(u, qs[0]))
            firstMs.append(Double(nowNanos() - t) / 1e6)
        }
        print("  memoryd first search per user: \(firstMs.map { fmt($0, 1) }.joined(separator: ", ")) ms; \(rss())")

        // The same backend in this process (no socket, no protobuf), on memoryd's database or a new one.
        var service: MemoryService?
        var backend: SQLiteBackend?
        var directFirst = Double.nan
        if !skipDirect {
            var logger = Logger(label: "bench")
            logger.logLevel = .warning
            let limits = Limits(embeddingDimension: dimension)
            let b = try SQLiteBackend(
                dataDirectory: directDataDir ?? (workDir + "/direct"),
                namespace: directDataDir == nil ? "bench" : "default", limits: limits, indexMemoryMB: directIndexMb,
                logger: logger)
            let svc = MemoryService(
                store: try b.makeConnection(), limits: limits, version: "bench", startedAtUptimeNanos: 0,
                healthFigures: { .init(backend: "sqlite", firestore: false, details: [:]) })
            if directDataDir == nil {
                var unused = SplitMix64(seed: 0)
                var s = 0
                while s < count {
                    let e = min(count, s + 1000)
                    _ = try svc.handle(
                        .addMemoryItems(items: items(0, s..<e, &unused), upsert: true), context: CallContext())
                    s = e
                }
            }
            let tf = nowNanos()
            _ = try svc.handle(.semanticSearch(request(0, qs[0])), context: CallContext())
            directFirst = Double(nowNanos() - tf) / 1e6
            service = svc
            backend = b
        }
        let numpy =
            python.isEmpty
            ? nil
            : try NumpyServer(
                python: python, script: numpyScript, workDir: workDir, count: count, dimension: dimension,
                queries: queries, topK: topK)
        defer { numpy?.close() }

        // Query by query, memoryd (every user), in-process and numpy in turn, so that all three see the same
        // load on a shared machine. Whatever runs right after numpy shares the cores with OpenBLAS's threads,
        // which spin for a while after each call (measured: the system right after numpy was ~20 % slower,
        // whichever it was), so numpy's turn ends with a 200 ms pause, and the order rotates with each query.
        var daemonTimes: [UInt64] = [], firstUserTimes: [UInt64] = [], directTimes: [UInt64] = []
        var numpyMs: [Double] = []
        var daemonIDs: [[String]] = [], numpyIDs: [[String]] = []
        let prefix = users == 1 ? "vec_" : "vec0_"
        for (i, q) in qs.enumerated() {
            for turn in 0..<3 {
                switch (turn + i) % 3 {
                case 0:
                    for u in 0..<users {
                        let t = nowNanos()
                        let r = try client.semanticSearch(request(u, q))
                        daemonTimes.append(nowNanos() - t)
                        if u == 0 {
                            firstUserTimes.append(daemonTimes.last!)
                            daemonIDs.append(r.map(\.item.id))
                        }
                    }
                case 1:
                    if let service {
                        let t = nowNanos()
                        _ = try service.handle(.semanticSearch(request(0, q)), context: CallContext())
                        directTimes.append(nowNanos() - t)
                    }
                default:
                    if let numpy {
                        let (ms, top) = try numpy.query(i)
                        numpyMs.append(ms)
                        numpyIDs.append(top.map { "\(prefix)\($0)" })
                        usleep(200_000)
                    }
                }
            }
        }
        let daemon = Percentiles(daemonTimes)
        let health = try client.healthCheck().details
        func figure(_ key: String) -> Double { health[key]?.numberValue ?? .nan }
        let after = pid > 0 ? residentKiB(pid: pid) : (rss: 0, hwm: 0)
        print(
            "  memoryd SemanticSearch over the socket: median \(fmt(daemon.p50 / 1000, 2)) ms, mean \(fmt(daemon.mean / 1000, 2)) ms per query; \(rss())"
        )
        print(
            "  memoryd index: \(fmt(figure("index_bytes") / 1_048_576, 1)) MiB of \(fmt(figure("index_budget_bytes") / 1_048_576, 0)) MiB budget, \(fmt(figure("indexed_users"), 0)) user(s) loaded, \(fmt(figure("index_loads"), 0)) loads, \(fmt(figure("index_evictions"), 0)) evictions, \(fmt(figure("index_streamed_searches"), 0)) streamed searches; kernel \(health["vector_kernel"]?.stringValue ?? "?")"
        )
        log.write([
            "kind": .string("vector"), "system": .string("memoryd"), "median_ms": .number(daemon.p50 / 1000),
            "mean_ms": .number(daemon.mean / 1000), "count": .number(Double(count)), "users": .number(Double(users)),
            "load_s": .number(loadSeconds), "first_ms": .array(firstMs.map { .number($0) }),
            "rss_kib": .number(Double(after.rss)), "hwm_kib": .number(Double(after.hwm)),
            "index_bytes": .number(figure("index_bytes")), "index_evictions": .number(figure("index_evictions")),
            "streamed_searches": .number(figure("index_streamed_searches")),
        ])
        var direct: Percentiles?
        if let backend {
            let d = Percentiles(directTimes)
            direct = d
            let stats = backend.statistics()
            print(
                "  sqlite backend in-process (MemoryService.handle, index budget \(directIndexMb) MiB): first \(fmt(directFirst, 1)) ms, median \(fmt(d.p50 / 1000, 2)) ms, mean \(fmt(d.mean / 1000, 2)) ms per query; index \(fmt((stats["index_bytes"]?.numberValue ?? 0) / 1_048_576, 1)) MiB, \(fmt(stats["index_streamed_searches"]?.numberValue ?? 0, 0)) streamed"
            )
            log.write([
                "kind": .string("vector"), "system": .string("memoryd-inprocess"), "median_ms": .number(d.p50 / 1000),
                "first_ms": .number(directFirst), "mean_ms": .number(d.mean / 1000), "count": .number(Double(count)),
                "index_mb": .number(Double(directIndexMb)),
            ])
            backend.shutdown()
        }

        guard let numpy else { return }
        let blas = try numpy.finish()
        let npMedian = median(numpyMs)
        var overlap = 0, compared = 0
        for (a, b) in zip(daemonIDs, numpyIDs) {
            overlap += Set(a).intersection(b).count
            compared += topK
        }
        // Against the first user's queries, which are numpy's data set.
        let ratio = Percentiles(firstUserTimes).p50 / 1000 / npMedian
        print(
            "  numpy (\(blas)): median \(fmt(npMedian, 2)) ms, mean \(fmt(numpyMs.reduce(0, +) / Double(max(1, numpyMs.count)), 2)) ms per query; loaded in \(fmt(numpy.loadSeconds, 1)) s"
        )
        print("  same top-\(topK) as numpy: \(overlap)/\(compared) ids")
        print(
            "  memoryd / numpy = \(fmt(ratio, 2))x (target <= 1x: \(ratio <= 1 ? "MET" : "MISSED"))"
                + (direct.map { "; in-process / numpy = \(fmt($0.p50 / 1000 / npMedian, 2))x" } ?? ""))
        log.write([
            "kind": .string("vector"), "system": .string("numpy"), "median_ms": .number(npMedian),
            "mean_ms": .number(numpyMs.reduce(0, +) / Double(max(1, numpyMs.count))), "blas": .string(blas),
            "count": .number(Double(count)), "same_ids": .number(Double(overlap)),
            "ids_total": .number(Double(compared)),
            "ratio": .number(ratio),
        ])
        if overlap * 100 < compared * 99 {
            throw BenchError("memoryd and numpy disagree on the top-\(topK) (\(overlap)/\(compared))")
        }
    }

    private func median(_ v: [Double]) -> Double {
        guard !v.isEmpty else { return .nan }
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    func writeFloats(_ path: String, _ values: [Float]) throws {
        guard let f = fopen(path, "w") else { throw BenchError("cannot write \(path)") }
        defer { fclose(f) }
        let n = values.withUnsafeBufferPointer { fwrite($0.baseAddress, 4, $0.count, f) }
        guard n == values.count else { throw BenchError("short write to \(path)") }
    }
}

/// numpy_topk.py in `--serve` mode: the matrix loaded once, then one query per request, answered through a
/// FIFO, so memory-bench can interleave numpy's queries with memoryd's.
final class NumpyServer {
    private let input: UnsafeMutablePointer<FILE>
    private let ack: UnsafeMutablePointer<FILE>
    private(set) var loadSeconds = Double.nan
    private var closed = false

    init(python: String, script: String, workDir: String, count: Int, dimension: Int, queries: Int, topK: Int) throws {
        let fifo = workDir + "/numpy.ack"
        unlink(fifo)
        guard mkfifo(fifo, 0o600) == 0 else { throw BenchError("mkfifo \(fifo) failed") }
        // OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset, so that OpenBLAS picks its own kernel.
        let command =
            "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE '\(python)' '\(script)' '\(workDir)/vectors.f32' '\(workDir)/queries.f32' \(count) \(dimension) \(queries) \(topK) --serve '\(fifo)'"
        guard let input = popen(command, "w") else { throw BenchError("popen failed: \(command)") }
        self.input = input
        // Blocks until the script has loaded its matrix and opened the FIFO.
        guard let ack = fopen(fifo, "r") else { throw BenchError("cannot open \(fifo)") }
        self.ack = ack
        let ready = try readLine()
        loadSeconds = ready["load_s"]?.numberValue ?? .nan
    }

    /// Runs query `i`: its time in ms and the row numbers of its top-k.
    func query(_ i: Int) throws -> (ms: Double, top: [Int]) {
        fputs("\(i)\n", input)
        fflush(input)
        let r = try readLine()
        return (r["ms"]?.numberValue ?? .nan, (r["top"]?.arrayValue ?? []).map { Int($0.numberValue ?? -1) })
    }

    /// Ends the script; returns its BLAS description.
    func finish() throws -> String {
        fputs("end\n", input)
        fflush(input)
        let r = try readLine()
        close()
        return (r["blas"]?.stringValue ?? "?") + ", numpy " + (r["numpy"]?.stringValue ?? "?")
    }

    func close() {
        guard !closed else { return }
        closed = true
        pclose(input)
        fclose(ack)
    }

    private func readLine() throws -> JSONValue {
        var line = [CChar](repeating: 0, count: 1 << 16)
        guard fgets(&line, Int32(line.count), ack) != nil else { throw BenchError("numpy_topk.py stopped answering") }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let json = try? JSONValue.parse(text) else { throw BenchError("numpy_topk.py said: \(text)") }
        return json
    }
}
