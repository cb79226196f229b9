import ArgumentParser
import MemoryClient
import MemoryDomain

#if canImport(Glibc)
import Glibc
#endif

/// The original system's benchmark (`memory_benchmark --item-count 100`: random 768-d embeddings; add N,
/// get 20, one semantic search top_k 5, one history limit 20) on the Firestore emulator: memoryd
/// (`--backend firestore`) against the V1-style baseline, operation by operation, side by side.
struct Seed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "The original workload on Firestore: memoryd vs the V1 baseline (new HTTP connection per request, client-side search)."
    )

    @Option(help: "memoryd's socket (a firestore daemon).") var socket: String
    @Option(help: "The Firestore emulator, host:port.") var emulatorHost: String
    @Option(help: "The project id memoryd was started with.") var projectId = "memoryd-bench"
    @Option(help: "Items each client adds.") var itemCount = 100
    @Option(help: "Gets per client.") var gets = 20
    @Option(help: "Searches and histories per client (the workload has one; more steadies the figure).") var reps = 5
    @Option(help: "Clients at once, each with its own user (memoryd: its own connection).") var concurrency = 1
    @Option(help: "Also time search and history over one user with this many items (comma-separated; empty = none).")
    var searchItems = ""
    @Option(help: "Embedding dimension.") var dimension = 768
    @Option(help: "Append JSON lines here.") var jsonOut: String?

    final class Slots: @unchecked Sendable {  // each thread writes only its own index
        var times: [[UInt64]]
        var errors: [String?]
        init(_ n: Int) {
            times = Array(repeating: [], count: n)
            errors = Array(repeating: nil, count: n)
        }
    }

    struct OpFigure {
        var meanMs: Double
        var callsPerSecond: Double
    }

    func run() throws {
        let log = ResultLog(path: jsonOut)
        let v1 = try V1Baseline(emulatorHost: emulatorHost, projectID: projectId)
        let setup = try waitForDaemon(socket)
        setup.close()
        let tag = "\(getpid())x\(nowNanos() % 1_000_000_000)"
        let n = concurrency
        var rng = SplitMix64(seed: 7)
        // Items per client and system (own users, so the two systems never read each other's data).
        func makeItems(_ prefix: String, _ c: Int) -> [MemoryItem] {
            (0..<itemCount).map { i in
                MemoryItem(
                    id: "\(prefix)_\(tag)_\(c)_\(i)", userID: "\(prefix)_user_\(tag)_\(c)", sessionID: "s\(c)",
                    itemType: "conversation", textContent: "benchmark memory \(i) of client \(c)",
                    embedding: rng.vector(dimension))
            }
        }
        let mdItems = (0..<n).map { makeItems("md", $0) }
        let v1Items = (0..<n).map { makeItems("v1", $0) }
        let queries = (0..<n).map { _ in rng.vector(dimension) }
        let clients = try (0..<n).map { _ in try MemoryClient(socketPath: socket, timeoutMs: 120_000) }
        final class ClientBox: @unchecked Sendable {
            let c: [MemoryClient]
            init(_ c: [MemoryClient]) { self.c = c }
        }
        let box = ClientBox(clients)
        let getIndexes = (0..<gets).map { _ in Int(rng.next() % UInt64(max(1, itemCount))) }

        /// Runs `op(client, index)` on every client at once; returns the mean latency and the throughput.
        func phase(_ what: String, _ op: @escaping @Sendable (Int, Int) throws -> Void, count: Int) throws -> OpFigure {
            let slots = Slots(n)
            let t0 = nowNanos()
            parallel(n) { c in
                do {
                    for i in 0..<count {
                        let t = nowNanos()
                        try op(c, i)
                        slots.times[c].append(nowNanos() - t)
                    }
                } catch {
                    slots.errors[c] = "\(error)"
                }
            }
            let wall = Double(nowNanos() - t0) / 1e9
            if let e = slots.errors.compactMap({ $0 }).first { throw BenchError("\(what): \(e)") }
            let all = slots.times.flatMap { $0 }
            return OpFigure(
                meanMs: Double(all.reduce(0, +)) / Double(all.count) / 1e6, callsPerSecond: Double(all.count) / wall)
        }

        let mdSets = mdItems, v1Sets = v1Items, qs = queries, gi = getIndexes
        let k = 5
        var rows: [(String, OpFigure, OpFigure, Double?)] = []  // op, memoryd, V1, target factor
        let mdAdd = try phase("memoryd add", { c, i in _ = try box.c[c].addMemoryItem(mdSets[c][i]) }, count: itemCount)
        let v1Add = try phase("V1 add", { c, i in try v1.add(v1Sets[c][i]) }, count: itemCount)
        rows.append(("add", mdAdd, v1Add, 2))
        let mdGet = try phase(
            "memoryd get", { c, i in _ = try box.c[c].getMemoryItem(mdSets[c][gi[i]].id) }, count: gets)
        let v1Get = try phase("V1 get", { c, i in _ = try v1.get(v1Sets[c][gi[i]].id) }, count: gets)
        rows.append(("get", mdGet, v1Get, 3))
        let mdSearch = try phase(
            "memoryd search",
            { c, _ in
                let r = try box.c[c].semanticSearch(
                    SearchRequest(userID: mdSets[c][0].userID, queryEmbedding: qs[c], topK: UInt32(k)))
                guard r.count == min(k, itemCount) else { throw BenchError("memoryd search returned \(r.count)") }
            }, count: reps)
        let v1Search = try phase(
            "V1 search",
            { c, _ in
                let r = try v1.search(userID: v1Sets[c][0].userID, query: qs[c], topK: k)
                guard r.count == min(k, itemCount) else { throw BenchError("V1 search returned \(r.count)") }
            }, count: reps)
        rows.append(("search", mdSearch, v1Search, 5))
        let mdHistory = try phase(
            "memoryd history",
            { c, _ in
                let p = try box.c[c].conversationHistory(HistoryRequest(userID: mdSets[c][0].userID, limit: 20))
                guard p.items.count == min(20, itemCount) else {
                    throw BenchError("memoryd history returned \(p.items.count)")
                }
            }, count: reps)
        let v1History = try phase(
            "V1 history",
            { c, _ in
                let h = try v1.history(userID: v1Sets[c][0].userID, limit: 20)
                guard h.count == min(20, itemCount) else { throw BenchError("V1 history returned \(h.count)") }
            }, count: reps)
        rows.append(("history", mdHistory, v1History, 2))
        // memoryd's batch call for the same N items (one AddMemoryItems per client), per item.
        let batchSets = (0..<n).map { c in
            mdSets[c].map {
                var it = $0
                it.id = "b" + it.id
                return it
            }
        }
        let mdBatch = try phase(
            "memoryd batch add", { c, _ in _ = try box.c[c].addMemoryItems(batchSets[c]) }, count: 1)

        print(
            "seed vs V1 — the original guide's baseline (a new connection per request, search = read every document), kept to answer that guide's claims; the peer to beat is the official client (firestore_peer.py). Firestore emulator \(emulatorHost), \(itemCount) items x \(n) client(s), \(dimension)-d embeddings"
        )
        print(
            "\(pad("op", 8)) \(pad("memoryd ms", 11)) \(pad("V1 ms", 9)) \(pad("factor", 7)) \(pad("target", 7))  \(n > 1 ? "memoryd calls/s  V1 calls/s" : "")"
        )
        for (op, md, old, target) in rows {
            let factor = old.meanMs / md.meanMs
            let verdict =
                target.map { factor >= $0 ? "guide's \(fmt($0, 0))x: met" : "guide's \(fmt($0, 0))x: missed" } ?? ""
            print(
                "\(pad(op, 8)) \(pad(fmt(md.meanMs, 2), 11)) \(pad(fmt(old.meanMs, 2), 9)) \(pad(fmt(factor, 1) + "x", 7)) \(pad(verdict, 11))"
                    + (n > 1 ? "  \(pad(fmt(md.callsPerSecond, 0), 14))  \(pad(fmt(old.callsPerSecond, 0), 10))" : ""))
            log.write([
                "kind": .string("seed"), "op": .string(op), "items": .number(Double(itemCount)),
                "concurrency": .number(Double(n)),
                "memoryd_ms": .number(md.meanMs), "v1_ms": .number(old.meanMs), "factor": .number(factor),
                "memoryd_calls_per_s": .number(md.callsPerSecond), "v1_calls_per_s": .number(old.callsPerSecond),
                "target": .number(target ?? 0),
            ])
        }
        let perItem = mdBatch.meanMs / Double(itemCount)
        print(
            "  (memoryd AddMemoryItems of the same \(itemCount) items in one call: \(fmt(perItem, 3)) ms per item = \(fmt(v1Add.meanMs / perItem, 1))x V1's add)"
        )
        log.write([
            "kind": .string("seed"), "op": .string("add_batch"), "items": .number(Double(itemCount)),
            "concurrency": .number(Double(n)),
            "memoryd_ms": .number(perItem), "v1_ms": .number(v1Add.meanMs), "factor": .number(v1Add.meanMs / perItem),
        ])

        for s in searchItems.split(separator: ",").compactMap({ Int($0) }) where s > 0 {
            try searchAtScale(items: s, v1: v1, client: clients[0], tag: tag, rng: &rng, log: log)
        }
        for c in clients { c.close() }
    }

    /// Loads `items` items for one user through memoryd (AddMemoryItems), then times search and history on
    /// that same data: memoryd (findNearest in Firestore) vs V1 (read everything, score here).
    func searchAtScale(
        items: Int, v1: V1Baseline, client: MemoryClient, tag: String, rng: inout SplitMix64, log: ResultLog
    ) throws {
        let user = "big_user_\(tag)_\(items)"
        let t0 = nowNanos()
        var start = 0
        while start < items {
            let end = min(items, start + 400)
            let batch = (start..<end).map { i in
                MemoryItem(
                    id: "big_\(tag)_\(items)_\(i)", userID: user, sessionID: "s", itemType: "conversation",
                    textContent: "memory \(i)", embedding: rng.vector(dimension))
            }
            let results = try client.addMemoryItems(batch)
            if let bad = results.first(where: { $0.error != nil }) { throw BenchError("load: \(bad.error!)") }
            start = end
        }
        let loadSeconds = Double(nowNanos() - t0) / 1e9
        let q = rng.vector(dimension)
        var md: [UInt64] = [], old: [UInt64] = [], mdH: [UInt64] = [], oldH: [UInt64] = []
        var top1 = ("", "")
        for _ in 0..<reps {
            var t = nowNanos()
            let r = try client.semanticSearch(SearchRequest(userID: user, queryEmbedding: q, topK: 5))
            md.append(nowNanos() - t)
            t = nowNanos()
            let o = try v1.search(userID: user, query: q, topK: 5)
            old.append(nowNanos() - t)
            top1 = (r.first?.item.id ?? "", o.first?.0 ?? "")
            t = nowNanos()
            _ = try client.conversationHistory(HistoryRequest(userID: user, limit: 20))
            mdH.append(nowNanos() - t)
            t = nowNanos()
            _ = try v1.history(userID: user, limit: 20)
            oldH.append(nowNanos() - t)
        }
        func mean(_ x: [UInt64]) -> Double { Double(x.reduce(0, +)) / Double(x.count) / 1e6 }
        let f = mean(old) / mean(md), fh = mean(oldH) / mean(mdH)
        print(
            "search at \(items) items of one user (loaded through memoryd in \(fmt(loadSeconds, 1)) s; same top-1: \(top1.0 == top1.1 ? "yes" : "NO (\(top1.0) vs \(top1.1))")):"
        )
        print(
            "  search  memoryd \(fmt(mean(md), 1)) ms  V1 \(fmt(mean(old), 1)) ms  factor \(fmt(f, 1))x"
                + (items >= 10_000 ? " (target 20x: \(f >= 20 ? "MET" : "MISSED"))" : ""))
        print("  history memoryd \(fmt(mean(mdH), 1)) ms  V1 \(fmt(mean(oldH), 1)) ms  factor \(fmt(fh, 1))x")
        log.write([
            "kind": .string("seed_scale"), "op": .string("search"), "items": .number(Double(items)),
            "memoryd_ms": .number(mean(md)), "v1_ms": .number(mean(old)), "factor": .number(f),
            "same_top1": .bool(top1.0 == top1.1),
        ])
        log.write([
            "kind": .string("seed_scale"), "op": .string("history"), "items": .number(Double(items)),
            "memoryd_ms": .number(mean(mdH)), "v1_ms": .number(mean(oldH)), "factor": .number(fh),
        ])
    }
}
