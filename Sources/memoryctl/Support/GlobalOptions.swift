import ArgumentParser
import MemoryClient
import MemoryDomain
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// The options every command takes (SPEC §7), before or after the command name.
struct GlobalOptions: ParsableArguments {
    static let defaultSocket = "/run/memoryd/memoryd.sock"

    @Option(
        help: ArgumentHelp("memoryd's socket (default: $MEMORYD_SOCKET, else \(defaultSocket)).", valueName: "path"))
    var socket: String?

    @Flag(help: "Print one JSON document on stdout (errors as JSON on stderr).")
    var json = false

    @Option(
        help: ArgumentHelp(
            "Deadline of each call in seconds (default: the daemon's default_timeout_ms).", valueName: "seconds"))
    var timeout: Double?

    func validate() throws {
        if let timeout, !(timeout > 0 && timeout <= 86_400) {
            throw ValidationError("--timeout must be more than 0 and at most 86400 seconds, not \(timeout)")
        }
        if let socket, socket.isEmpty { throw ValidationError("--socket must not be empty") }
    }

    var socketPath: String {
        if let socket { return socket }
        if let env = getenv("MEMORYD_SOCKET"), env.pointee != 0 { return String(cString: env) }
        return Self.defaultSocket
    }

    var timeoutMs: UInt64 { timeout.map { UInt64(($0 * 1000).rounded(.up)) } ?? 0 }

    /// Connects to the daemon; failing to reach it is an UNAVAILABLE call error (exit 8).
    func connect() throws(MemoryError) -> MemoryClient {
        try MemoryClient(socketPath: socketPath, timeoutMs: timeoutMs)
    }

    // MARK: - Before or after the command

    /// `--timeout -1` → `--timeout=-1`: the parser takes a value that starts with `-` for an option and
    /// would say "Missing value"; joined, the option's own check names the bad number (and a negative
    /// `--min-score`, which euclidean scores need, works).
    static func negativeValuesJoined(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" {
                out += arguments[i...]
                break
            }
            if a.hasPrefix("--"), !a.contains("="), i + 1 < arguments.count, arguments[i + 1].hasPrefix("-"),
                Double(arguments[i + 1]) != nil
            {
                out.append(a + "=" + arguments[i + 1])
                i += 2
            } else {
                out.append(a)
                i += 1
            }
        }
        return out
    }

    /// Options that take a value, and flags, that `hoisted` moves.
    private static let valued: Set<String> = ["--socket", "--timeout"]
    private static let flags: Set<String> = ["--json"]

    /// Moves the global options found before the command name to the end of the arguments (before a
    /// `--` terminator), so that `memoryctl --json get ID` parses like `memoryctl get ID --json`.
    static func hoisted(_ arguments: [String]) -> [String] {
        var globals: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            let name = a.split(separator: "=", maxSplits: 1).first.map(String.init) ?? a
            if flags.contains(a) {
                globals.append(a)
                i += 1
            } else if valued.contains(name) && a.contains("=") {
                globals.append(a)
                i += 1
            } else if valued.contains(a) && i + 1 < arguments.count {
                globals += [a, arguments[i + 1]]
                i += 2
            } else {
                break
            }
        }
        guard !globals.isEmpty else { return arguments }
        var rest = Array(arguments[i...])
        if let terminator = rest.firstIndex(of: "--") {
            rest.insert(contentsOf: globals, at: terminator)
        } else {
            rest += globals
        }
        return rest
    }
}
