import ArgumentParser

struct AgentDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent-data",
        abstract: "Add, show and list the raw data agents keep.",
        discussion: """
            Example:
              memoryctl agent-data add --agent planner --type plan --content '{"steps": 3}'
              memoryctl agent-data list --agent planner
            """,
        subcommands: [AgentDataAdd.self, AgentDataGet.self, AgentDataList.self])
}
