import ArgumentParser

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print memoryd's metrics in the Prometheus text format.",
        discussion: """
            The same text memoryd serves at GET /metrics when metrics_listen is set, read over the memory \
            socket (GetMetrics): for hosts without Prometheus, or where no TCP port may be opened. \
            --grep keeps the lines whose metric name contains a word (comments of those metrics included).

            Example:
              memoryctl metrics --grep memoryd_calls_total
              # HELP memoryd_calls_total Calls answered, by method and status code (gRPC code names).
              # TYPE memoryd_calls_total counter
              memoryd_calls_total{method="Ping",code="OK"} 12
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions
    @Option(help: "Only metrics whose name contains this text.") var grep: String?

    func run() throws {
        try globals.run { console in
            let client = try globals.connect()
            defer { client.close() }
            var text = try client.getMetrics()
            if let grep {
                text =
                    text.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
                        let name =
                            line.hasPrefix("# ")
                            ? line.split(separator: " ").dropFirst(2).first ?? ""
                            : line.prefix { $0 != "{" && $0 != " " }
                        return name.contains(grep)
                    }.joined(separator: "\n") + "\n"
            }
            if console.json {
                console.document(.object(["text": .string(text)]))
            } else {
                console.out(String(text.dropLast(text.hasSuffix("\n") ? 1 : 0)))
            }
        }
    }
}
