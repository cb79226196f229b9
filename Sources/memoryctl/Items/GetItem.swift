import ArgumentParser
import MemoryDomain

struct GetItem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Show one memory item.",
        discussion: """
            Times are shown in local time (--json: RFC 3339 UTC). The embedding is summarized unless \
            --full. An expired item is not found (exit 4).

            Example:
              memoryctl get mem_3f9a1c0b7d2e4a58
              memoryctl get mem_3f9a1c0b7d2e4a58 --json | jq .metadata
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions
    @Argument(help: "The item's id.") var id: String
    @Flag(help: "Show the whole embedding.") var full = false

    func run() throws {
        try globals.run { console in
            let client = try globals.connect()
            defer { client.close() }
            let item = try client.getMemoryItem(id)
            if console.json {
                console.document(JSONForms.item(item))
            } else {
                console.out(Self.render(item, full: full))
            }
        }
    }

    static func render(_ item: MemoryItem, full: Bool) -> String {
        var b = Block()
        b.add("id", item.id)
        b.add("user", item.userID)
        b.add("session", item.sessionID.isEmpty ? "-" : item.sessionID)
        b.add("type", item.itemType)
        b.add("persona", item.personaActive.isEmpty ? "-" : item.personaActive)
        b.add("time", Format.localTime(item.timestamp, zone: true))
        b.add("expires", item.expiration.map { Format.localTime($0, zone: true) } ?? "never")
        b.add("embedding", Format.embedding(item.embedding, full: full))
        if item.metadata.isEmpty {
            b.add("metadata", "-")
        } else {
            b.add(
                "metadata",
                item.metadata.keys.sorted().map { "\($0)=\(Format.value(item.metadata[$0]!))" }.joined(separator: "\n"))
        }
        b.add("text", item.textContent.isEmpty ? "-" : item.textContent)
        return b.render()
    }
}
