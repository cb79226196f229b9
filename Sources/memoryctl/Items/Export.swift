import ArgumentParser
import MemoryClient
import MemoryDomain
import MemoryUtilities

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write memory items and agent data as JSON Lines, in the form import reads.",
        discussion: """
            Reads every page. Without options: every item of every user and every type, then all \
            agent data: a backup of the namespace. --user: only that user's items, of every type \
            (agent data belongs to agents, not users: add --agent-data for it). --type: only items \
            of that type. Items come oldest first, agent data newest first; expired entries are not \
            exported. Each line is what `get --json` or `agent-data get --json` shows, on one line. \
            Progress goes to stderr when it is a terminal.

            Example:
              memoryctl export > backup.jsonl
              memoryctl export --user dave --agent-data > dave.jsonl
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions
    @Option(help: "Only this user's items (user_id).") var user: String?
    @Option(help: "Only items of this type (item_type).") var type: String?
    @Flag(help: "Items of every type (the default).") var allTypes = false
    @Flag(help: "Include all agent data (the default without --user).") var agentData = false
    @Flag(help: "No memory items: only agent data.") var noItems = false
    @Option(help: "Entries per call (1 to 1000; halved when a page is too large for a frame).") var pageSize: UInt32 =
        500

    func validate() throws {
        if type != nil && allTypes { throw ValidationError("--type and --all-types exclude each other") }
        if noItems && (user != nil || type != nil || allTypes) {
            throw ValidationError("--no-items exports agent data only: it cannot go with --user, --type or --all-types")
        }
        guard (1...1000).contains(pageSize) else {
            throw ValidationError("--page-size must be 1 to 1000, not \(pageSize)")
        }
        if let user, user.isEmpty { throw ValidationError("--user must not be empty") }
        if let type, type.isEmpty { throw ValidationError("--type must not be empty") }
    }

    /// Agent data is exported with --agent-data or --no-items, and when everything is exported.
    var includesAgentData: Bool { agentData || noItems || user == nil && type == nil }

    func run() throws {
        try globals.run { console in
            let client = try globals.connect()
            defer { client.close() }
            let progress = console.stderrIsTerminal
            var items = 0
            var data = 0
            func show() {
                if progress { Console.write(2, "\r\u{1B}[Kexporting: \(items) items, \(data) agent data") }
            }
            if !noItems {
                try Self.pages(size: pageSize) { limit, token throws(MemoryError) in
                    let page = try client.listMemoryItems(
                        ListMemoryItemsRequest(userID: user ?? "", itemType: type ?? "", limit: limit, pageToken: token)
                    )
                    Console.write(1, page.items.map { JSONForms.item($0).serialized() + "\n" }.joined())
                    items += page.items.count
                    show()
                    return page.nextPageToken
                }
            }
            if includesAgentData {
                try Self.pages(size: pageSize) { limit, token throws(MemoryError) in
                    let page = try client.listAgentData(
                        ListAgentDataRequest(agentID: "", limit: limit, pageToken: token, allAgents: true))
                    Console.write(1, page.items.map { JSONForms.agentData($0).serialized() + "\n" }.joined())
                    data += page.items.count
                    show()
                    return page.nextPageToken
                }
            }
            if progress { Console.write(2, "\r\u{1B}[Kexported \(items) items and \(data) agent data\n") }
        }
    }

    /// Calls `page(limit, token)` until it returns an empty next-page token. A page the daemon finds too
    /// large for a frame (RESOURCE_EXHAUSTED) is asked again at half the size.
    static func pages(size: UInt32, _ page: (UInt32, String) throws(MemoryError) -> String) throws(MemoryError) {
        var limit = size
        var token = ""
        while true {
            let next: String
            do {
                next = try page(limit, token)
            } catch  where error.code == .resourceExhausted && error.type == .unspecified && limit > 1 {
                limit = max(1, limit / 2)
                continue
            }
            if next.isEmpty { return }
            token = next
        }
    }
}
