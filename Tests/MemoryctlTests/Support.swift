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
