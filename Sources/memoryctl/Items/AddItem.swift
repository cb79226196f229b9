import ArgumentParser
import MemoryDomain
import MemoryUtilities

struct AddItem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add a memory item; print its id.",
        discussion: """
            The daemon fills in what is left out: a generated id (mem_…), the time it received the \
            item, the type "conversation", and metadata.content_hash. \
            --metadata values are JSON when they parse as JSON (n=3, tags=["a"]), else strings.

            Example:
              memoryctl add --user alice --session s1 --text "likes green tea" \\
                --embedding-file tea.csv --metadata source=chat --expires-in 86400
              mem_3f9a1c0b7d2e4a58
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions

    @Option(help: "The user the memory belongs to (user_id).") var user: String
    @Option(help: "The session (session_id).") var session: String = ""
    @Option(help: "The item type (item_type; default conversation).") var type: String = ""
    @Option(help: "The persona active when it was said (persona_active).") var persona: String = ""
    @Option(help: "The text (text_content).") var text: String = ""
    @Option(help: ArgumentHelp("The embedding as comma-separated numbers.", valueName: "csv")) var embedding: String?
    @Option(help: ArgumentHelp("A file holding the embedding (comma- or space-separated numbers).", valueName: "file"))
    var embeddingFile: String?
    @Option(help: ArgumentHelp("Metadata entry (repeatable).", valueName: "key=value")) var metadata: [String] = []
    @Option(help: "The id (default: generated).") var id: String = ""
    @Option(help: ArgumentHelp("Expire the item this many seconds from now.", valueName: "seconds")) var expiresIn:
        Double?
    @Flag(help: "Replace the item when the id exists.") var upsert = false
    @Flag(help: "Refuse the item when an item of the user has the same text (DuplicateError).") var rejectDuplicate =
        false

    func validate() throws {
        if embedding != nil && embeddingFile != nil {
            throw ValidationError("give --embedding or --embedding-file, not both")
        }
        if let e = expiresIn, !(e > 0 && e.isFinite) {
            throw ValidationError("--expires-in must be a positive number of seconds, not \(e)")
        }
        if upsert && rejectDuplicate { throw ValidationError("--upsert and --reject-duplicate exclude each other") }
    }

    func run() throws {
        try globals.run { console in
            var item = MemoryItem(
                id: id, userID: user, sessionID: session, itemType: type, personaActive: persona,
                textContent: text)
            item.embedding = try InputParsing.embedding(csv: embedding, file: embeddingFile) ?? []
            item.metadata = try InputParsing.pairs(metadata, option: "--metadata")
            if let expiresIn { item.expiration = Timestamp.now().adding(seconds: expiresIn) }
            let client = try globals.connect()
            defer { client.close() }
            let newID = try client.addMemoryItem(item, upsert: upsert, rejectDuplicateContent: rejectDuplicate)
            if console.json {
                console.document(.object(["id": .string(newID)]))
            } else {
                console.out(newID)
            }
        }
    }
}
