import ArgumentParser
import MemoryClient
import MemoryDomain
import MemoryUtilities

/// What recording metrics costs: Ping at 1 connection × 16 in flight (the loop thread's busiest path)
/// against two daemons of the same build, one recording (`metrics = true`, the endpoint on) and one not
/// (`metrics = false`), in interleaved rounds, compared by their medians.
struct MetricsOverhead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics-overhead",
        abstract: "Ping 1x16 calls/s with metrics on vs off (two daemons), interleaved rounds, medians.")

    @Option(help: "The daemon recording metrics.") var on: String
    @Option(help: "The daemon started with metrics = false.") var off: String
    @Option(help: "Rounds; each measures both daemons, in alternating order.") var rounds = 9
    @Option(help: "Calls per measurement.") var calls = 200_000
    @Option(help: "Largest acceptable slowdown with metrics on, in percent.") var budget = 3.0
    @Option(help: "Append JSON lines here.") var jsonOut: String?
    @Option(help: "The recording daemon's pid: also compare CPU time per call (/proc).") var onPid: Int32?
    @Option(help: "The other daemon's pid.") var offPid: Int32?

    func run() throws {
        let log = ResultLog(path: jsonOut)
        let shape = LoadShape(connections: 1, depth: 16, calls: calls)
        let onClient = try waitForDaemon(on)
        _ = try waitForDaemon(off)
        let onGen = try LoadGenerator(socketPath: on, request: .ping, connections: 1, depth: 16)
        let offGen = try LoadGenerator(socketPath: off, request: .ping, connections: 1, depth: 16)
        let before = try pingsCounted(onClient)
        var sent = 0
        // The generator sends whole batches of 16: count what it sent, not what was asked.
        sent += onGen.run(calls: min(calls / 10, 20_000), record: false).calls
        _ = offGen.run(calls: min(calls / 10, 20_000), record: false)
        print(
            "metrics-overhead: Ping \(shape.label), \(calls) calls per measurement, \(rounds) rounds (on/off order alternates)"
        )
        print(
            "\(pad("round", 5)) \(pad("on calls/s", 11)) \(pad("off calls/s", 11)) \(pad("on/off", 7)) \(pad("on loop us/call", 15)) \(pad("off loop us/call", 16))"
        )
        var onRates: [Double] = []
        var offRates: [Double] = []
        var onCPU: [Double] = []
        var offCPU: [Double] = []
        for round in 1...rounds {
            // ABBA: a drift in the machine's load over a round weighs on both sides alike.
            let order = round % 2 == 1 ? [true, false] : [false, true]
            var rate: [Bool: Double] = [:]
            var cpu: [Bool: Double] = [:]
            for isOn in order {
                let pid = isOn ? onPid : offPid
                let cpu0 = pid.map(cpuSeconds) ?? 0
                let r = (isOn ? onGen : offGen).run(calls: calls)
                guard r.errors == 0 else { throw BenchError("\(r.errors) calls failed (\(isOn ? "on" : "off"))") }
                rate[isOn] = r.callsPerSecond
                if isOn { sent += r.calls }
                cpu[isOn] = pid.map { (cpuSeconds($0) - cpu0) / Double(r.calls) * 1e6 } ?? .nan
            }
            onCPU.append(cpu[true]!)
            offCPU.append(cpu[false]!)
            onRates.append(rate[true]!)
            offRates.append(rate[false]!)
            print(
                "\(pad(String(round), 5)) \(pad(fmt(rate[true]!, 0), 11)) \(pad(fmt(rate[false]!, 0), 11)) \(pad(fmt(rate[true]! / rate[false]!, 3), 7)) \(pad(fmt(cpu[true]!, 3), 15)) \(pad(fmt(cpu[false]!, 3), 16))"
            )
            log.write([
                "kind": .string("metrics_overhead_round"), "round": .number(Double(round)),
                "on_calls_per_s": .number(rate[true]!), "off_calls_per_s": .number(rate[false]!),
            ])
        }
        let onMedian = median(onRates), offMedian = median(offRates)
        // The verdict uses the median of the rounds' own ratios: each round compares two runs seconds apart,
        // so a machine whose load drifts over minutes (other builds on these 2 cores) weighs on both alike.
        let pairedRatio = median(zip(onRates, offRates).map { $0 / $1 })
        let slowdown = (1 - pairedRatio) * 100
        // The daemon counted what it was sent: every Ping of the warm-up and the rounds.
        let counted = try pingsCounted(onClient) - before
        print(
            "medians: on \(fmt(onMedian, 0)) calls/s, off \(fmt(offMedian, 0)) calls/s (ratio \(fmt(onMedian / offMedian, 3))); median of the rounds' on/off ratios \(fmt(pairedRatio, 3)): on is \(fmt(slowdown, 2)) % slower (budget \(fmt(budget, 1)) %) -> \(slowdown <= budget ? "MET" : "MISSED")"
        )
        if onPid != nil && offPid != nil {
            let on = median(onCPU), off = median(offCPU)
            let paired = median(zip(onCPU, offCPU).map { $0 / $1 })
            print(
                "loop thread CPU per call: medians on \(fmt(on, 3)) us, off \(fmt(off, 3)) us; median of the rounds' on/off ratios \(fmt(paired, 3)) (\(fmt((paired - 1) * 100, 1)) % more with metrics)"
            )
            log.write([
                "kind": .string("metrics_overhead_cpu"), "on_cpu_us_per_call": .number(on),
                "off_cpu_us_per_call": .number(off), "paired_ratio": .number(paired),
            ])
        }
        print(
            "memoryd_calls_total{method=\"Ping\",code=\"OK\"} on the recording daemon: \(Int(counted)) (sent \(sent))")
        log.write([
            "kind": .string("metrics_overhead"), "on_calls_per_s": .number(onMedian),
            "off_calls_per_s": .number(offMedian), "paired_ratio": .number(pairedRatio),
            "slowdown_percent": .number(slowdown),
            "budget_percent": .number(budget), "met": .bool(slowdown <= budget), "rounds": .number(Double(rounds)),
            "pings_counted": .number(counted), "pings_sent": .number(Double(sent)),
        ])
        guard counted == Double(sent) else {
            throw BenchError("the daemon counted \(counted) Pings, \(sent) were sent")
        }
    }

    func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// CPU time of a process's main thread so far, in seconds: memoryd's loop thread, where every Ping is
    /// answered (/proc/PID/task/PID/schedstat, nanoseconds; finer than /proc/PID/stat's 10 ms ticks).
    func cpuSeconds(_ pid: Int32) -> Double {
        guard let text = TextFile.read("/proc/\(pid)/task/\(pid)/schedstat"),
            let ns = text.split(separator: " ").first.flatMap({ Double($0) })
        else { return .nan }
        return ns / 1e9
    }

    func pingsCounted(_ client: MemoryClient) throws -> Double {
        let text = try client.getMetrics()
        let key = "memoryd_calls_total{method=\"Ping\",code=\"OK\"} "
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }),
            let v = Double(line.dropFirst(key.count))
        else { throw BenchError("no Ping counter in the metrics") }
        return v
    }
}
