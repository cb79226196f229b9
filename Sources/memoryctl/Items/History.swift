import ArgumentParser
import MemoryDomain

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a user's conversation history, newest first.",
        discussion: """
            Shows items of type "conversation" unless --type. Long text is shortened to fit the \
            terminal; --full shows all of it. When more items exist, the last line gives the \
            --page-token for the next page.

            Example:
              memoryctl history --user alice --session s1 --limit 50
              memoryctl history --user alice --filter metadata.source=chat --json
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions
    @Option(help: "The user (user_id).") var user: String
    @Option(help: "Only this session.") var session: String = ""
    @Option(help: "At most this many items (default 20, max 1000).") var limit: UInt32?
    @Option(help: "The item type (default conversation).") var type: String = ""
    @Option(help: ArgumentHelp("Equality filter on a field or metadata.KEY (repeatable).", valueName: "field=value"))
    var filter: [String] = []
    @Option(help: "Continue after a previous page.") var pageToken: String = ""
    @Flag(help: "Do not shorten the text.") var full = false
    @Flag(help: "Include the embeddings (left out unless asked for; they show with --json).") var embeddings = false

    func run() throws {
        try globals.run { console in
            let filters = try InputParsing.pairs(filter, option: "--filter")
            let client = try globals.connect()
            defer { client.close() }
            let page = try client.conversationHistory(
                HistoryRequest(
                    userID: user, sessionID: session, limit: limit ?? 0,
                    itemType: type, filters: filters, pageToken: pageToken, excludeEmbeddings: !embeddings))
            if console.json {
                console.document(
                    .object([
                        "items": .array(page.items.map(JSONForms.item)),
                        "next_page_token": .string(page.nextPageToken),
                    ]))
                return
            }
            if page.items.isEmpty {
                console.out("no items")
                return
            }
            var table = Table("TIME", "ID", "SESSION", "PERSONA", "TEXT")
            for item in page.items {
                table.add(
                    Format.localTime(item.timestamp), item.id, item.sessionID.isEmpty ? "-" : item.sessionID,
                    item.personaActive.isEmpty ? "-" : item.personaActive, item.textContent)
            }
            console.out(table.render(full: full))
            if !page.nextPageToken.isEmpty { console.out("more: --page-token \(page.nextPageToken)") }
        }
    }
}
