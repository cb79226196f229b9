import ArgumentParser
import MemoryDomain

#if canImport(Glibc)
import Glibc
#endif

/// Allocations per call, read from the LD_PRELOAD malloc counter (`scripts/bench-tools/malloc-count.c`)
/// that memoryd was started with: SIGUSR2 before and after N calls, the difference over N.
struct Allocs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "malloc calls per Ping and per GetMemoryItem in memoryd (started with the malloc-count preload).")

    @Option(help: "memoryd's socket.") var socket: String
    @Option(help: "memoryd's pid.") var pid: Int32
    @Option(help: "The MALLOC_COUNT_FILE memoryd was started with.") var countFile: String
    @Option(help: "Calls per method.") var calls = 20_000
    @Option(help: "Append JSON lines here.") var jsonOut: String?

    func run() throws {
        let client = try waitForDaemon(socket)
        let item = MemoryItem(
            id: "bench_warm_item", userID: "bench", sessionID: "s1",
            textContent: String(repeating: "memory ", count: 14))
        _ = try client.addMemoryItem(item, upsert: true)
        client.close()
        for (name, request) in [("ping", MethodRequest.ping), ("get", .getMemoryItem(id: item.id))] {
            let gen = try LoadGenerator(socketPath: socket, request: request, connections: 1, depth: 1)
            _ = gen.run(calls: 2000, record: false)
            let before = try snapshot()
            _ = gen.run(calls: calls, record: false)
            let after = try snapshot()
            let perCall = Double(after - before) / Double(calls)
            print(
                "allocs per call: \(pad(name, 5)) \(fmt(perCall, 2))  (\(after - before) mallocs over \(calls) calls, 1x1, all threads)"
            )
            ResultLog(path: jsonOut).write([
                "kind": .string("allocs"), "method": .string(name), "allocs_per_call": .number(perCall),
            ])
        }
    }

    /// Signals memoryd and reads the counter line it appends.
    func snapshot() throws -> Int {
        let lines = (try? runShell("cat '\(countFile)' 2>/dev/null"))?.split(separator: "\n").count ?? 0
        kill(pid, SIGUSR2)
        for _ in 0..<200 {
            usleep(5000)
            let text = (try? runShell("cat '\(countFile)'")) ?? ""
            let all = text.split(separator: "\n")
            if all.count > lines, let last = all.last,
                let a = last.split(separator: " ").first?.split(separator: "=").last, let n = Int(a)
            {
                return n
            }
        }
        throw BenchError(
            "memoryd (pid \(pid)) did not write its malloc count to \(countFile): was it started with LD_PRELOAD=malloc-count.so?"
        )
    }
}
