import ArgumentParser
import MemoryDomain
import MemoryUtilities

struct AgentDataAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add agent data; print its id.",
        discussion: """
            --content is any JSON value: an object, an array, a number, or a quoted string.

            Example:
              memoryctl agent-data add --agent planner --type plan \\
                --content '{"steps": ["search", "answer"]}'
              agent_5c1e9b2f0a7d4e36
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions
    @Option(help: "The agent (agent_id).") var agent: String
    @Option(help: "The kind of data (data_type).") var type: String
    @Option(help: ArgumentHelp("The data, as JSON.", valueName: "json")) var content: String
    @Option(help: ArgumentHelp("Metadata entry (repeatable).", valueName: "key=value")) var metadata: [String] = []
    @Option(help: "The id (default: generated).") var id: String = ""
    @Option(help: ArgumentHelp("Expire the data this many seconds from now.", valueName: "seconds")) var expiresIn:
        Double?

    func validate() throws {
        if let e = expiresIn, !(e > 0 && e.isFinite) {
            throw ValidationError("--expires-in must be a positive number of seconds, not \(e)")
        }
        do { _ = try JSONValue.parse(content) } catch {
            throw ValidationError("--content is not valid JSON: \(error) (quote a string: '\"text\"')")
        }
    }

    func run() throws {
        try globals.run { console in
            var data = AgentData(id: id, agentID: agent, dataType: type)
            data.content = try InputParsing.json(content, option: "--content")
            data.metadata = try InputParsing.pairs(metadata, option: "--metadata")
            if let expiresIn { data.expiration = Timestamp.now().adding(seconds: expiresIn) }
            let client = try globals.connect()
            defer { client.close() }
            let newID = try client.addRawAgentData(data)
            if console.json {
                console.document(.object(["id": .string(newID)]))
            } else {
                console.out(newID)
            }
        }
    }
}
