import Foundation
import MemoryTestSupport
import MemoryUtilities
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// What a finished process left: exit status and its output.
struct CommandResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    /// stdout as JSON (nil when it is not one JSON document).
    var json: JSONValue? { try? JSONValue.parse(stdout) }

    var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

/// Runs `executable` with `arguments` in a clean environment (PATH and `environment` only), output to
/// files so that large outputs cannot block the child.
func runProcess(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:],
    stdin: String? = nil, timeout: Double = 60
) throws -> CommandResult {
    let dir = TestPaths.makeTempDirectory("ctl")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let outPath = dir + "/stdout", errPath = dir + "/stderr", inPath = dir + "/stdin"
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    _ = FileManager.default.createFile(atPath: inPath, contents: Data((stdin ?? "").utf8))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "TZ": "UTC"]
    for (k, v) in environment { env[k] = v }
    p.environment = env
    p.standardOutput = FileHandle(forWritingAtPath: outPath)
    p.standardError = FileHandle(forWritingAtPath: errPath)
    p.standardInput = FileHandle(forReadingAtPath: inPath)
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(2000) }
    if p.isRunning {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        throw DaemonError("\(executable) \(arguments) did not finish within \(timeout) s")
    }
    p.waitUntilExit()
    return CommandResult(
        status: p.terminationStatus,
        stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
}

/// The path of `tool` on $PATH.
func findExecutable(_ tool: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/\(tool)"
        if access(path, X_OK) == 0 { return path }
    }
    return nil
}

/// The built memoryctl.
func memoryctl(
    _ arguments: [String], socket: String? = nil, stdin: String? = nil,
    environment: [String: String] = [:]
) throws -> CommandResult {
    var env = environment
    if let socket { env["MEMORYD_SOCKET"] = socket }
    return try runProcess(TestPaths.binary("memoryctl"), arguments, environment: env, stdin: stdin)
}

/// A test against one real daemon (embedding dimension 4), started per test.
class MemoryctlTestCase: XCTestCase {
    var daemon: DaemonProcess!

    override func setUpWithError() throws {
        daemon = DaemonProcess(environment: ["MEMORYD_EMBEDDING_DIMENSION": "4"])
        try daemon.start()
    }

    override func tearDown() {
        if let daemon {
            daemon.stop()
            daemon.removeDirectory()
        }
        daemon = nil
    }

    /// memoryctl on this test's daemon (socket from $MEMORYD_SOCKET).
    func ctl(_ arguments: String..., stdin: String? = nil) throws -> CommandResult {
        try memoryctl(arguments, socket: daemon.socketPath, stdin: stdin)
    }

    func ctl(args: [String], stdin: String? = nil) throws -> CommandResult {
        try memoryctl(args, socket: daemon.socketPath, stdin: stdin)
    }

    /// Runs memoryctl and asserts the exit status; returns the result.
    @discardableResult
    func expect(
        _ status: Int32, _ arguments: [String], stdin: String? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> CommandResult {
        let r = try memoryctl(arguments, socket: daemon.socketPath, stdin: stdin)
        XCTAssertEqual(r.status, status, "memoryctl \(arguments.joined(separator: " "))\n\(r)", file: file, line: line)
        return r
    }
}

/// The fields of SPEC §4, exactly.
let memoryItemFields: Set<String> = [
    "id", "user_id", "session_id", "timestamp", "item_type", "persona_active",
    "text_content", "embedding", "metadata", "expiration",
]
let agentDataFields: Set<String> = ["id", "agent_id", "timestamp", "data_type", "content", "metadata", "expiration"]

extension String {
    var lines: [String] { split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}

/// A child started with posix_spawn and reaped with waitpid, for programs that close the descriptors
/// they inherit (systemd-socket-activate does): Foundation's Process takes that for the child's exit and
/// blocks in waitpid, which stalls every other Process of the test.
final class SpawnedProcess {
    let pid: pid_t
    private(set) var exitStatus: Int32?

    /// Starts `path` with `arguments` and exactly `environment`; stdout and stderr append to `output`.
    init(_ path: String, _ arguments: [String], environment: [String: String], output: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // The test process may block signals on its threads; the child must see SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGPIPE] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw DaemonError("posix_spawn \(path): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            _ = wait(timeout: 10)
        }
    }

    /// Waits up to `timeout` seconds; returns the exit status (128 + signal when killed), nil if still running.
    func wait(timeout: Double) -> Int32? {
        if let exitStatus { return exitStatus }
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                exitStatus = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
                return exitStatus
            }
            usleep(10_000)
        } while Date() < deadline
        return nil
    }
}
