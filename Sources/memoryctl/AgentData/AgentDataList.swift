import ArgumentParser
import MemoryDomain

struct AgentDataList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List an agent's data, newest first.",
        discussion: """
            Example:
              memoryctl agent-data list --agent planner --type plan --limit 10
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions
    @Option(help: "The agent (agent_id).") var agent: String
    @Option(help: "Only this kind of data (data_type).") var type: String = ""
    @Option(help: "At most this many entries (default 20, max 1000).") var limit: UInt32?
    @Option(help: "Continue after a previous page.") var pageToken: String = ""
    @Flag(help: "Do not shorten the content.") var full = false

    func run() throws {
        try globals.run { console in
            let client = try globals.connect()
            defer { client.close() }
            let page = try client.listAgentData(
                ListAgentDataRequest(
                    agentID: agent, dataType: type, limit: limit ?? 0,
                    pageToken: pageToken))
            if console.json {
                console.document(
                    .object([
                        "items": .array(page.items.map(JSONForms.agentData)),
                        "next_page_token": .string(page.nextPageToken),
                    ]))
                return
            }
            if page.items.isEmpty {
                console.out("no entries")
                return
            }
            var table = Table("TIME", "ID", "TYPE", "CONTENT")
            for d in page.items {
                table.add(Format.localTime(d.timestamp), d.id, d.dataType, d.content.map { $0.serialized() } ?? "-")
            }
            console.out(table.render(full: full))
            if !page.nextPageToken.isEmpty { console.out("more: --page-token \(page.nextPageToken)") }
        }
    }
}
