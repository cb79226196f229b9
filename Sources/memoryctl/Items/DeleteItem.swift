import ArgumentParser

struct DeleteItem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete one memory item.",
        discussion: """
            Exits 4 (NotFoundError) when no item has this id.

            Example:
              memoryctl delete mem_3f9a1c0b7d2e4a58
              deleted mem_3f9a1c0b7d2e4a58
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions
    @Argument(help: "The item's id.") var id: String

    func run() throws {
        try globals.run { console in
            let client = try globals.connect()
            defer { client.close() }
            try client.deleteMemoryItem(id)
            if console.json {
                console.document(.object(["id": .string(id), "deleted": .bool(true)]))
            } else {
                console.out("deleted \(id)")
            }
        }
    }
}
