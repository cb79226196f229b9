import ArgumentParser
import MemoryClient
import MemoryDomain
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// One shape of load: `connections` sockets × `depth` requests in flight on each.
struct LoadShape: Sendable {
    var connections: Int
    var depth: Int
    var calls: Int
    var label: String { "\(connections)x\(depth)" }
}

/// One measured run of one system.
struct TransportFigure {
    var system: String
    var method: String
    var shape: String
    var callsPerSecond: Double
    var p50: Double
    var p99: Double
    var p999: Double
    var errors: Int

    var json: [String: JSONValue] {
        [
            "kind": .string("transport"), "system": .string(system), "method": .string(method), "shape": .string(shape),
            "calls_per_s": .number(callsPerSecond), "p50_us": .number(p50), "p99_us": .number(p99),
            "p999_us": .number(p999), "errors": .number(Double(errors)),
        ]
    }
}

struct Transport: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Ping and GetMemoryItem against memoryd, side by side with redis-benchmark (PING, GET) on a Unix socket.")

    @Option(help: "memoryd's socket.") var socket: String
    @Option(help: "redis-server's Unix socket (omit to skip Redis).") var redisSocket: String?
    @Option(help: "Calls per run at 1x1 (the others run 2x this).") var calls = 100_000
    @Option(help: "Repetitions (memoryd and Redis alternate within each).") var reps = 3
    @Option(help: "ping,get") var methods = "ping,get"
    @Option(help: "Shapes CONNECTIONSxDEPTH, comma-separated.") var shapes = "1x1,50x1,1x16"
    @Option(help: "Append JSON lines here.") var jsonOut: String?

    func run() throws {
        let log = ResultLog(path: jsonOut)
        let client = try waitForDaemon(socket)
        // A warm item: small text, no embedding (GET of one short record, like Redis's GET).
        let item = MemoryItem(
            id: "bench_warm_item", userID: "bench", sessionID: "s1",
            textContent: String(repeating: "memory ", count: 14))
        _ = try client.addMemoryItem(item, upsert: true)
        let id = try client.connection.start(.getMemoryItem(id: item.id))
        let getPayloadBytes = try client.connection.waitResponse(id).payload.count
        client.close()
        if let redisSocket {
            try runShell(
                "redis-cli -s '\(redisSocket)' set key:__rand_int__ '\(String(repeating: "x", count: getPayloadBytes))' >/dev/null"
            )
        }

        let shapeList: [LoadShape] = try shapes.split(separator: ",").map { s in
            let p = s.split(separator: "x").compactMap { Int($0) }
            guard p.count == 2 else { throw ValidationError("bad shape \(s)") }
            return LoadShape(connections: p[0], depth: p[1], calls: p[0] == 1 && p[1] == 1 ? calls : 2 * calls)
        }
        let methodList = methods.split(separator: ",").map(String.init)
        print(
            "transport: memoryd at \(socket)\(redisSocket.map { ", redis at \($0)" } ?? ""); GET value/payload \(getPayloadBytes) bytes; \(reps) reps"
        )
        print(
            "\(pad("method", 6)) \(pad("shape", 5)) \(pad("system", 8)) \(pad("calls/s", 9)) \(pad("p50 us", 8)) \(pad("p99 us", 8)) \(pad("p99.9 us", 9))"
        )

        var all: [TransportFigure] = []
        for rep in 1...reps {
            for method in methodList {
                for shape in shapeList {
                    let m = try measureMemoryd(method: method, shape: shape, itemID: item.id)
                    all.append(m)
                    printRow(m)
                    log.write(m.json.merging(["rep": .number(Double(rep))]) { a, _ in a })
                    if let redisSocket {
                        let r = try measureRedis(
                            socket: redisSocket, method: method, shape: shape, valueBytes: getPayloadBytes)
                        all.append(r)
                        printRow(r)
                        log.write(r.json.merging(["rep": .number(Double(rep))]) { a, _ in a })
                        let g = try measureRedisSameClient(socket: redisSocket, method: method, shape: shape)
                        all.append(g)
                        printRow(g)
                        log.write(g.json.merging(["rep": .number(Double(rep))]) { a, _ in a })
                    }
                }
            }
        }
        // Summary: the median over repetitions of each figure, and memoryd / Redis.
        print(
            "\nsummary (median of \(reps) reps; redis = redis-benchmark, redis-mb = Redis through memory-bench's load generator; targets: p50 at 1x1 <= redis, calls/s at 50x1 and 1x16 >= redis)"
        )
        for method in methodList {
            for shape in shapeList {
                let m = median(all.filter { $0.system == "memoryd" && $0.method == method && $0.shape == shape.label })
                printRow(m)
                log.write(m.json.merging(["summary": .bool(true)]) { a, _ in a })
                guard redisSocket != nil else { continue }
                let r = median(all.filter { $0.system == "redis" && $0.method == method && $0.shape == shape.label })
                printRow(r)
                log.write(r.json.merging(["summary": .bool(true)]) { a, _ in a })
                let g = median(all.filter { $0.system == "redis-mb" && $0.method == method && $0.shape == shape.label })
                printRow(g)
                log.write(g.json.merging(["summary": .bool(true)]) { a, _ in a })
                for (other, name) in [(r, "redis-benchmark"), (g, "redis via memory-bench's client")] {
                    let verdict =
                        shape.label == "1x1"
                        ? "p50 \(fmt(m.p50 / other.p50, 2))x -> \(m.p50 <= other.p50 ? "MET" : "MISSED")"
                        : "calls/s \(fmt(m.callsPerSecond / other.callsPerSecond, 2))x -> \(m.callsPerSecond >= other.callsPerSecond ? "MET" : "MISSED")"
                    print("       \(pad(shape.label, 5))   memoryd vs \(name): \(verdict)")
                    log.write([
                        "kind": .string("transport_ratio"), "method": .string(method), "shape": .string(shape.label),
                        "against": .string(name), "p50_ratio": .number(m.p50 / other.p50),
                        "calls_ratio": .number(m.callsPerSecond / other.callsPerSecond),
                    ])
                }
            }
        }
        if all.contains(where: { $0.system == "memoryd" && $0.errors > 0 }) {
            throw BenchError("memoryd answered some calls with errors")
        }
    }

    func printRow(_ f: TransportFigure) {
        print(
            "\(pad(f.method, 6)) \(pad(f.shape, 5)) \(pad(f.system, 8)) \(pad(fmt(f.callsPerSecond, 0), 9)) \(pad(fmt(f.p50), 8)) \(pad(fmt(f.p99), 8)) \(pad(fmt(f.p999), 9))\(f.errors > 0 ? "  errors: \(f.errors)" : "")"
        )
    }

    func median(_ figs: [TransportFigure]) -> TransportFigure {
        func med(_ xs: [Double]) -> Double {
            let s = xs.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        var f = figs[0]
        f.callsPerSecond = med(figs.map(\.callsPerSecond))
        f.p50 = med(figs.map(\.p50))
        f.p99 = med(figs.map(\.p99))
        f.p999 = med(figs.map(\.p999))
        f.errors = figs.map(\.errors).reduce(0, +)
        return f
    }

    func measureMemoryd(method: String, shape: LoadShape, itemID: String) throws -> TransportFigure {
        let request: MethodRequest = method == "ping" ? .ping : .getMemoryItem(id: itemID)
        let gen = try LoadGenerator(
            socketPath: socket, request: request, connections: shape.connections, depth: shape.depth)
        _ = gen.run(calls: min(shape.calls / 10, 5000), record: false)
        let r = gen.run(calls: shape.calls)
        return TransportFigure(
            system: "memoryd", method: method, shape: shape.label, callsPerSecond: r.callsPerSecond,
            p50: r.latencies.p50, p99: r.latencies.p99, p999: r.latencies.p999, errors: r.errors)
    }

    /// Redis measured by memory-bench's own load generator (RESP PING / GET), exactly as memoryd is.
    func measureRedisSameClient(socket: String, method: String, shape: LoadShape) throws -> TransportFigure {
        let command = method == "ping" ? ["PING"] : ["GET", "key:__rand_int__"]
        let gen = try LoadGenerator(
            redisSocketPath: socket, command: command, connections: shape.connections, depth: shape.depth)
        _ = gen.run(calls: min(shape.calls / 10, 5000), record: false)
        let r = gen.run(calls: shape.calls)
        return TransportFigure(
            system: "redis-mb", method: method, shape: shape.label, callsPerSecond: r.callsPerSecond,
            p50: r.latencies.p50, p99: r.latencies.p99, p999: r.latencies.p999, errors: r.errors)
    }

    /// Runs redis-benchmark and reads its summary: throughput, p50 and p99 from the "latency summary", and
    /// p99.9 as the first line of its percentile distribution at or above 99.9 % (an upper bound).
    func measureRedis(socket: String, method: String, shape: LoadShape, valueBytes: Int) throws -> TransportFigure {
        let test = method == "ping" ? "ping" : "get"
        let section = method == "ping" ? "PING_MBULK" : "GET"
        let pipeline = shape.depth > 1 ? "-P \(shape.depth)" : ""
        let text = try runShell(
            "redis-benchmark -s '\(socket)' -t \(test) -n \(shape.calls) -c \(shape.connections) \(pipeline) -d \(valueBytes) 2>&1"
        )
        guard let start = text.firstRange(of: "====== \(section) ======") else {
            throw BenchError("redis-benchmark printed no \(section) section:\n\(text.suffix(2000))")
        }
        let body = text[start.upperBound...]
        let lines = body.split(separator: "\n").map { $0.trimmingCharacters() }
        var rps = 0.0, p50 = 0.0, p99 = 0.0, p999 = 0.0
        for (i, l) in lines.enumerated() {
            if l.hasPrefix("throughput summary:") {
                rps = Double(l.split(separator: " ")[2]) ?? 0
            } else if l.hasPrefix("latency summary"), i + 2 < lines.count {
                let header = lines[i + 1].split(separator: " ").map(String.init)
                let values = lines[i + 2].split(separator: " ").compactMap { Double($0) }
                if let a = header.firstIndex(of: "p50"), a < values.count { p50 = values[a] * 1000 }
                if let a = header.firstIndex(of: "p99"), a < values.count { p99 = values[a] * 1000 }
            } else if p999 == 0, l.hasSuffix(")"), l.contains("% <= "), let pct = Double(l.split(separator: "%")[0]),
                pct >= 99.9
            {
                let parts = l.split(separator: " ")
                if parts.count >= 3 { p999 = (Double(parts[2]) ?? 0) * 1000 }
            }
            if l.hasPrefix("======") { break }
        }
        return TransportFigure(
            system: "redis", method: method, shape: shape.label, callsPerSecond: rps,
            p50: p50, p99: p99, p999: p999, errors: 0)
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        var s = self
        while let f = s.first, f == " " || f == "\r" || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\r" || l == "\t" { s = s.dropLast() }
        // redis-benchmark's progress lines end in \r and are followed by the real text.
        if let r = s.lastIndex(of: "\r") { s = s[s.index(after: r)...] }
        return String(s)
    }
}

/// Runs a shell command, returns its stdout; throws when it exits non-zero.
@discardableResult
func runShell(_ command: String) throws -> String {
    guard let p = popen(command, "r") else { throw BenchError("popen failed: \(command)") }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buf, 1, buf.count, p)
        if n <= 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    let status = pclose(p)
    guard status == 0 else {
        throw BenchError("\(command) exited with \(status):\n\(String(decoding: out.suffix(2000), as: UTF8.self))")
    }
    return String(decoding: out, as: UTF8.self)
}
