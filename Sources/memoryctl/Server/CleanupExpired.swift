import ArgumentParser

struct CleanupExpired: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup-expired",
        abstract: "Delete the memory items whose expiration has passed; print how many.",
        discussion: """
            Expired items are already invisible to every read; this frees their storage now instead \
            of waiting for the backend's own cleanup.

            Example:
              memoryctl cleanup-expired
              deleted 12 expired items
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions

    func run() throws {
        try globals.run { console in
            let client = try globals.connect()
            defer { client.close() }
            let n = try client.cleanupExpiredItems()
            if console.json {
                console.document(.object(["deleted_count": .number(Double(n))]))
            } else {
                console.out("deleted \(n) expired item\(n == 1 ? "" : "s")")
            }
        }
    }
}
