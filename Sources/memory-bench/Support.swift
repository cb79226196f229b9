import MemoryClient
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// Monotonic nanoseconds (vDSO clock_gettime, ~20 ns).
@inline(__always)
func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Latency percentiles of a set of samples (nanoseconds in, microseconds out).
struct Percentiles {
    var count: Int
    var p50: Double
    var p99: Double
    var p999: Double
    var mean: Double
    var max: Double

    init(_ samples: [UInt64]) {
        let s = samples.sorted()
        count = s.count
        func at(_ q: Double) -> Double {
            guard !s.isEmpty else { return 0 }
            let i = Swift.min(s.count - 1, Int((q * Double(s.count)).rounded(.up)) - 1)
            return Double(s[Swift.max(0, i)]) / 1000
        }
        p50 = at(0.50)
        p99 = at(0.99)
        p999 = at(0.999)
        mean = s.isEmpty ? 0 : Double(s.reduce(0, +)) / Double(s.count) / 1000
        self.max = s.isEmpty ? 0 : Double(s.last!) / 1000
    }
}

/// Appends one JSON object per line to the results file (the script turns them into docs and a chart).
struct ResultLog {
    let path: String?

    func write(_ fields: [String: JSONValue]) {
        guard let path, let f = fopen(path, "a") else { return }
        defer { fclose(f) }
        fputs(JSONValue.object(fields).serialized(sortedKeys: true) + "\n", f)
    }
}

func fmt(_ x: Double, _ digits: Int = 1) -> String {
    guard x.isFinite else { return "-" }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (x * p).rounded() / p
    var s = "\(r)"
    if digits == 0, s.hasSuffix(".0") { s.removeLast(2) }
    return s
}

func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}

func stderrLine(_ s: String) {
    _ = (s + "\n").withCString { write(2, $0, strlen($0)) }
}

/// Connects with retries until the daemon answers a Ping (the script starts it just before).
func waitForDaemon(_ socketPath: String, timeoutSeconds: Double = 60) throws -> MemoryClient {
    let deadline = nowNanos() + UInt64(timeoutSeconds * 1e9)
    var last: Error?
    while nowNanos() < deadline {
        do {
            let c = try MemoryClient(socketPath: socketPath, timeoutMs: 600_000)
            _ = try c.ping()
            return c
        } catch {
            last = error
            usleep(50_000)
        }
    }
    throw BenchError(
        "memoryd at \(socketPath) did not answer within \(timeoutSeconds) s: \(last.map { "\($0)" } ?? "")")
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// VmRSS and VmHWM of a process, in KiB.
func residentKiB(pid: Int32) -> (rss: Int, hwm: Int) {
    guard let f = fopen("/proc/\(pid)/status", "r") else { return (0, 0) }
    defer { fclose(f) }
    var rss = 0, hwm = 0
    var line = [CChar](repeating: 0, count: 512)
    while fgets(&line, Int32(line.count), f) != nil {
        let s = String(decoding: line.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let parts = s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        if parts.count >= 2 {
            if parts[0] == "VmRSS:" { rss = Int(parts[1]) ?? 0 }
            if parts[0] == "VmHWM:" { hwm = Int(parts[1]) ?? 0 }
        }
    }
    return (rss, hwm)
}

/// A deterministic PRNG (SplitMix64), so numpy and memoryd see the same vectors from the same seed.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func nextFloat() -> Float { Float(Int64(bitPattern: next()) >> 40) / Float(1 << 23) }

    mutating func vector(_ dim: Int) -> [Float] {
        var v = [Float](repeating: 0, count: dim)
        for i in 0..<dim { v[i] = nextFloat() }
        return v
    }
}
