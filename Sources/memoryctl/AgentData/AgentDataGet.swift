import ArgumentParser

struct AgentDataGet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Show one agent data entry.",
        discussion: """
            Example:
              memoryctl agent-data get agent_5c1e9b2f0a7d4e36
              memoryctl agent-data get agent_5c1e9b2f0a7d4e36 --json | jq .content
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions
    @Argument(help: "The entry's id.") var id: String

    func run() throws {
        try globals.run { console in
            let client = try globals.connect()
            defer { client.close() }
            let data = try client.getAgentData(id)
            if console.json {
                console.document(JSONForms.agentData(data))
                return
            }
            var b = Block()
            b.add("id", data.id)
            b.add("agent", data.agentID)
            b.add("type", data.dataType)
            b.add("time", Format.localTime(data.timestamp, zone: true))
            b.add("expires", data.expiration.map { Format.localTime($0, zone: true) } ?? "never")
            b.add(
                "metadata",
                data.metadata.isEmpty
                    ? "-"
                    : data.metadata.keys.sorted().map { "\($0)=\(Format.value(data.metadata[$0]!))" }.joined(
                        separator: "\n"))
            b.add("content", data.content.map { $0.pretty() } ?? "-")
            console.out(b.render())
        }
    }
}
