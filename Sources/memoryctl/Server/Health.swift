import ArgumentParser
import MemoryDomain
import MemoryUtilities

struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show whether memoryd and its backend are healthy.",
        discussion: """
            The first line says healthy, DEGRADED or UNHEALTHY (with the reason); the details follow. \
            Exit status: 0 healthy, 1 degraded, 2 unhealthy, 8 memoryd unreachable — usable as a \
            monitoring check as it is.

            Example:
              memoryctl health
              memoryd is healthy (sqlite backend, memoryd 0.1.0, up 2h 5m)
                circuit_state         closed
                connection_pool_size  10
                ...
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions

    /// Shown first, in this order; the rest follow sorted by name.
    static let leading = [
        "reason", "backend", "version", "uptime_s", "circuit_state", "connection_pool_size",
        "connections_in_use", "queue_depth", "error_count", "last_error", "firestore_latency_ms",
        "firestore_error",
    ]

    func run() throws {
        var status = ""
        try globals.run { console in
            let report: HealthReport
            do {
                let client = try globals.connect()
                defer { client.close() }
                report = try client.healthCheck()
            } catch let error as MemoryError where console.json && error.type == .unspecified {
                // A monitoring check reading stdout still gets one document: memoryd itself is down.
                console.document(Self.unreachable(error))
                throw error
            }
            status = report.status
            if console.json {
                console.document(report.json)
            } else {
                console.out(Self.render(report))
            }
        }
        switch status {
        case "healthy": return
        case "degraded": throw ExitCode(1)
        default: throw ExitCode(2)
        }
    }

    /// The `--json` document when memoryd does not answer (the Python client's `health_check()` form).
    static func unreachable(_ error: MemoryError) -> JSONValue {
        .object([
            "status": .string("unhealthy"), "firestore": .bool(false),
            "details": .object([
                "memoryd_reachable": .bool(false), "reason": .string("\(error.name): \(error.message)"),
            ]),
        ])
    }

    /// Figures that read like a problem without their explanation: the sqlite index holds a user's vectors
    /// only after that user's first search since the start, so 0 after a restart is normal.
    static let notes = [
        "indexed_users": "users whose vectors are in memory (loaded on a user's first search)",
        "indexed_vectors": "vectors in memory (loaded on a user's first search; the data is on disk)",
    ]

    static func render(_ report: HealthReport) -> String {
        let d = report.details
        let backend = d["backend"].map(Format.value) ?? "?"
        var facts = ["\(backend) backend"]
        if let v = d["version"] { facts.append("memoryd \(Format.value(v))") }
        if let up = d["uptime_s"]?.numberValue { facts.append("up \(Format.duration(seconds: up))") }
        var first: String
        switch report.status {
        case "healthy": first = "memoryd is healthy"
        default: first = "memoryd is \(report.status.uppercased())"
        }
        if report.status != "healthy", let reason = d["reason"], Format.value(reason) != "-" {
            first += ": \(Format.value(reason))"
        }
        first += " (\(facts.joined(separator: ", ")))"

        var block = Block()
        let rest = d.keys.filter { !leading.contains($0) }.sorted()
        for key in leading + rest {
            // The reason is on the first line already.
            guard let v = d[key], key != "reason" else { continue }
            var shown = Format.value(v)
            if key == "uptime_s" {
                shown += " (\(Format.duration(seconds: v.numberValue ?? 0)))"
            } else if let note = notes[key] {
                shown += "  \(note)"
            }
            block.add(key, shown)
        }
        return first + "\n" + block.render(indent: "  ")
    }
}
