import Foundation

/// Documents as the original memory manager wrote them, written and read with Google's official Python client
/// (`google-cloud-firestore` from PyPI, in a venv under `.build` made on first use) through
/// `scripts/test-tools/v1_documents.py`, against the shared Firestore emulator.
public enum V1Documents {
    static let lock = NSLock()

    /// The venv's python, made (and the client installed) on first use.
    public static func python() throws -> String {
        lock.lock()
        defer { lock.unlock() }
        let venv = TestPaths.packageRoot + "/.build/test-venvs/google-cloud-firestore"
        let python = venv + "/bin/python"
        if FileManager.default.fileExists(atPath: python),
            (try? runToEnd(python, ["-c", "import google.cloud.firestore"]).status) == 0
        {
            return python
        }
        guard let python3 = Requirement.which("python3") else {
            throw Requirement.unavailable("python3 is not installed")
        }
        var (status, out, err) = try runToEnd(python3, ["-m", "venv", venv])
        if status == 0 {
            (status, out, err) = try runToEnd(
                python, ["-m", "pip", "install", "-q", "--disable-pip-version-check", "google-cloud-firestore"])
        }
        if status != 0 {
            try? FileManager.default.removeItem(atPath: venv)
            throw Requirement.unavailable("cannot install google-cloud-firestore from PyPI: \((out + err).suffix(300))")
        }
        return python
    }

    /// Runs the script with `arguments` against the emulator; throws with its output when it fails.
    @discardableResult
    public static func run(_ arguments: [String]) throws -> String {
        let script = TestPaths.packageRoot + "/scripts/test-tools/v1_documents.py"
        let (status, out, err) = try runToEnd(
            try python(), [script] + arguments,
            environment: ["FIRESTORE_EMULATOR_HOST": FirestoreEmulator.shared.hostPort])
        guard status == 0 else {
            throw DaemonError("v1_documents.py \(arguments.joined(separator: " ")) failed:\n\(err.suffix(3000))")
        }
        return out
    }

    /// Writes `count` old-shape memory items (and `agents` agent data) into the namespace's collections.
    public static func write(
        project: String, namespace: String, count: Int, agents: Int = 4, dimension: Int, malformed: Bool = false,
        seed: Int = 1
    ) throws {
        try run(
            [
                "write", "--project", project, "--collection", "\(namespace)_memory_items", "--agent-collection",
                "\(namespace)_agent_data", "--count", String(count), "--agents", String(agents), "--dim",
                String(dimension), "--seed", String(seed),
            ] + (malformed ? ["--malformed"] : []))
    }

    /// Every document of a collection, as the official client reads it, with Firestore's value types kept
    /// apart (`{"__vector__": [...]}`, `{"__double__": "0.5"}`, `{"__timestamp__": ...}`).
    public static func dump(project: String, collection: String) throws -> [String: Any] {
        let out = try run(["dump", "--project", project, "--collection", collection])
        guard let json = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any] else {
            throw DaemonError("v1_documents.py dump printed no JSON object:\n\(out.prefix(2000))")
        }
        return json
    }
}

/// Runs a program to its end: its exit status, stdout and stderr (stderr through a file, so that neither pipe
/// can fill and stall it).
/// - Parameters:
///   - environment: variables added to this process's environment, or the whole environment unless `inherit`.
public func runToEnd(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, inherit: Bool = true
) throws -> (status: Int32, stdout: String, stderr: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment {
        var env = inherit ? ProcessInfo.processInfo.environment : [:]
        for (k, v) in environment { env[k] = v }
        p.environment = env
    }
    let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString).err").path
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errPath) }
    let output = Pipe()
    p.standardOutput = output
    p.standardError = FileHandle(forWritingAtPath: errPath)
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return (p.terminationStatus, String(decoding: data, as: UTF8.self), err)
}
