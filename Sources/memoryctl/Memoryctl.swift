import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// `memoryctl`: the command line of memoryd (SPEC §7). One file per verb; every command talks to the
/// daemon through `MemoryClient`, the same library other Swift clients use.
@main
struct Memoryctl: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "memoryctl",
        abstract: "Inspect and operate memoryd, the shared memory of this host's AI agents.",
        discussion: """
            Global options (--socket, --json, --timeout) may come before or after the command. \
            The socket is --socket, else $MEMORYD_SOCKET, else /run/memoryd/memoryd.sock.

            Exit codes: 0 ok, 1 StorageError, 3 ValidationError, 4 NotFoundError, 5 DuplicateError, \
            6 ConnectionError, 7 OperationError, 8 call failed or memoryd unreachable, 64 usage error. \
            `health` exits 0 healthy, 1 degraded, 2 unhealthy, 8 unreachable.

            Example:
              memoryctl --socket /tmp/memoryd.sock health
            Shell completions (scripts/install installs all three):
              memoryctl --generate-completion-script bash   # or zsh, fish
            """,
        version: version,
        subcommands: [
            Ping.self, Health.self, Metrics.self,
            AddItem.self, ImportItems.self, Export.self, GetItem.self, DeleteItem.self, History.self, Search.self,
            AgentDataCommand.self, CleanupExpired.self,
        ])

    /// Global options given before the command are moved after it, where every command's
    /// `@OptionGroup` parses them.
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        let given = GlobalOptions.negativeValuesJoined(Array(CommandLine.arguments.dropFirst()))
        let arguments = GlobalOptions.hoisted(given)
        do {
            try checkCommandName(arguments)
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    /// `memoryctl --socket S bogus` must name the bad command, not the global option that hoisting moved
    /// after it (the root command has no `--socket`).
    static func checkCommandName(_ arguments: [String]) throws {
        guard let first = arguments.first, !first.hasPrefix("-") else { return }
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        guard !names.contains(first) else { return }
        throw ValidationError(
            "unknown command '\(first)'; the commands are \(names.dropLast().joined(separator: ", "))")
    }
}
