import ArgumentParser
import MemoryClient
import MemoryDomain

#if canImport(Glibc)
import Glibc
#endif

/// memoryd's resident memory: idle, with many idle connections, and after a million calls.
struct Memory: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "memoryd RSS idle, with idle connections, and after many calls.")

    @Option(help: "memoryd's socket.") var socket: String
    @Option(help: "memoryd's pid.") var pid: Int32
    @Option(help: "Idle connections to open.") var idleConnections = 1000
    @Option(help: "Calls to make (half Ping, half GetMemoryItem; 4 connections x 16 in flight).") var calls = 1_000_000
    @Option(help: "Append JSON lines here.") var jsonOut: String?

    func run() throws {
        let log = ResultLog(path: jsonOut)
        let client = try waitForDaemon(socket)
        usleep(200_000)
        let idle = residentKiB(pid: pid)
        print("memory: memoryd pid \(pid)")
        print("  idle:                         RSS \(fmt(Double(idle.rss) / 1024, 1)) MiB")
        log.write(["kind": .string("memory"), "phase": .string("idle"), "rss_kib": .number(Double(idle.rss))])

        var conns: [ClientConnection] = []
        for _ in 0..<idleConnections {
            let c = try ClientConnection(socketPath: socket)
            let id = try c.start(.ping)
            _ = try c.waitResponse(id)  // accepted and served once
            conns.append(c)
        }
        usleep(200_000)
        let withConns = residentKiB(pid: pid)
        let perConn = Double(withConns.rss - idle.rss) / Double(idleConnections)
        print(
            "  with \(idleConnections) idle connections:  RSS \(fmt(Double(withConns.rss) / 1024, 1)) MiB (\(fmt(perConn, 1)) KiB per connection)"
        )
        log.write([
            "kind": .string("memory"), "phase": .string("idle_connections"),
            "connections": .number(Double(idleConnections)),
            "rss_kib": .number(Double(withConns.rss)),
        ])
        for c in conns { c.close() }
        conns = []

        let item = MemoryItem(
            id: "bench_warm_item", userID: "bench", sessionID: "s1",
            textContent: String(repeating: "memory ", count: 14))
        _ = try client.addMemoryItem(item, upsert: true)
        let t = nowNanos()
        var done = 0
        for request in [MethodRequest.ping, .getMemoryItem(id: item.id)] {
            let gen = try LoadGenerator(socketPath: socket, request: request, connections: 4, depth: 16)
            let r = gen.run(calls: calls / 2, record: false)
            done += r.calls
            if r.errors > 0 { throw BenchError("\(r.errors) calls failed") }
        }
        usleep(500_000)
        let after = residentKiB(pid: pid)
        print(
            "  after \(done) calls:         RSS \(fmt(Double(after.rss) / 1024, 1)) MiB, peak \(fmt(Double(after.hwm) / 1024, 1)) MiB (calls took \(fmt(Double(nowNanos() - t) / 1e9, 1)) s)"
        )
        log.write([
            "kind": .string("memory"), "phase": .string("after_calls"), "calls": .number(Double(done)),
            "rss_kib": .number(Double(after.rss)), "hwm_kib": .number(Double(after.hwm)),
        ])
    }
}
