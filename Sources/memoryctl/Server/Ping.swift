import ArgumentParser
import MemoryUtilities

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that memoryd answers; print its version and the round-trip time.",
        discussion: """
            Connects, sends one Ping and prints the server's version, uptime and the round trip.

            Example:
              memoryctl ping
              memoryd 0.1.0 on /run/memoryd/memoryd.sock: round trip 0.183 ms, up 2h 5m
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions

    func run() throws {
        try globals.run { console in
            let client = try globals.connect()
            defer { client.close() }
            let start = monotonicNanos()
            let (version, uptimeMs) = try client.ping()
            let latencyMs = Double(monotonicNanos() - start) / 1_000_000
            if console.json {
                console.document(
                    .object([
                        "server_version": .string(version), "uptime_ms": .number(Double(uptimeMs)),
                        "latency_ms": .number((latencyMs * 1000).rounded() / 1000),
                        "socket": .string(globals.socketPath),
                    ]))
            } else {
                console.out(
                    "memoryd \(version) on \(globals.socketPath): round trip \(Format.milliseconds(latencyMs)), "
                        + "up \(Format.duration(seconds: Double(uptimeMs) / 1000))")
            }
        }
    }
}
