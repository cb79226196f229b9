import ArgumentParser

struct CleanupExpired: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup-expired",
        abstract: "Delete the memory items and agent data whose expiration has passed; print how many.",
        discussion: """
            Expired items and agent data are already invisible to every read; this frees their \
            storage now instead of waiting for the backend's own cleanup (Firestore's TTL policy). \
            The count covers both.

            Example:
              memoryctl cleanup-expired
              deleted 12 expired entries (memory items and agent data)
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
                console.out("deleted \(n) expired \(n == 1 ? "entry" : "entries") (memory items and agent data)")
            }
        }
    }
}
