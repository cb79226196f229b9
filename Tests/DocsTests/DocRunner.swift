import Foundation
import MemoryTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Runs a document's blocks in order, as a reader would, in one bash session:
///
/// - in a sandbox directory that looks like the repository (symlinks to its top-level entries, with
///   `.build/release` and `.build/debug` pointing at the binaries under test), `HOME` inside it;
/// - with the binaries under test and the client's venv first on `PATH`;
/// - with a sqlite memoryd already serving on `MEMORYD_SOCKET`, as after `scripts/quickstart` or an
///   install (a document may start its own daemons too);
/// - with these substitutions in commands, programs and expected output, so that runs on one machine
///   do not collide: `/tmp/memoryd` (the prefix) → a directory of the sandbox; `/run/memoryd/memoryd.sock`
///   → that daemon's socket; `127.0.0.1:8086` (the emulator's port in the docs) → a free port.
///
/// Every process the document leaves running (daemons, the emulator) is killed at the end by session.
final class DocRunner {
    struct Failure: CustomStringConvertible {
        var place: String
        var message: String
        var description: String { "\(place): \(message)" }
    }

    let document: String
    let blocks: [DocBlock]
    let sandbox: String
    let runFirestore: Bool
    let python: String?
    private(set) var substitutions: [(String, String)] = []
    var timeout: Double = 300

    /// - Parameters:
    ///   - document: the path from the package root.
    ///   - runFirestore: run the blocks marked `<!-- run: firestore -->` (else they are skipped).
    ///   - python: the venv's bin directory (nil: python blocks fail, saying why).
    init(document: String, runFirestore: Bool, python: String?) throws {
        self.document = document
        let text = try String(contentsOfFile: TestPaths.packageRoot + "/" + document, encoding: .utf8)
        self.blocks = DocBlock.parse(text, file: document)
        self.sandbox = TestPaths.makeTempDirectory("doc")
        self.runFirestore = runFirestore
        self.python = python
    }

    deinit { try? FileManager.default.removeItem(atPath: sandbox) }

    /// Blocks that are neither runnable, nor an illustration, nor marked no-run.
    var unmarked: [DocBlock] {
        blocks.filter {
            if case .unmarked = $0.kind { return true }
            return false
        }
    }

    /// Runs the document; returns what did not work (empty: the document runs as written).
    func run() throws -> [Failure] {
        var failures = unmarked.map {
            Failure(
                place: "\($0)",
                message:
                    "a block the harness cannot classify: use sh/console/python to run it, text for an illustration, or put <!-- no-run: reason --> before it"
            )
        }
        failures += syntaxErrorsOfBlocksNotRun()
        let runnable = blocks.enumerated().filter {
            $0.element.isRunnable && (!$0.element.needsFirestore || runFirestore)
        }
        guard !runnable.isEmpty else { return failures }

        try makeSandbox()
        let daemon = DaemonProcess(directory: sandbox + "/tmp-memoryd")
        try FileManager.default.createDirectory(atPath: daemon.directory, withIntermediateDirectories: true)
        try daemon.start()
        defer { daemon.stop() }
        substitutions = [
            ("/run/memoryd/memoryd.sock", daemon.socketPath), ("/tmp/memoryd", sandbox + "/tmp-memoryd"),
            ("127.0.0.1:8086", "127.0.0.1:\(freeTCPPort())"),
        ]

        var script = "exec 2>&1\nshopt -s expand_aliases\ncd \(quote(sandbox))\n"
        var transcripts: [Int: Transcript] = [:]
        for (index, block) in runnable {
            script += "printf '\\001BLOCK %d\\n' \(index)\n"
            switch block.kind {
            case .shell:
                // set -e as a careful reader would stop at a failure; no pipefail: `yes | head` is fine.
                script += "set -e\n\(substitute(block.text))\nset +e\n"
            case .python:
                let file = ".doc-blocks/\(index).py"
                try substitute(block.text).write(toFile: sandbox + "/" + file, atomically: true, encoding: .utf8)
                script += "set -e\npython3 \(file)\nset +e\n"
            case .console:
                let t = Transcript(block)
                transcripts[index] = t
                for (n, step) in t.steps.enumerated() {
                    script += "printf '\\001CMD %d %d\\n' \(index) \(n)\n{\n\(substitute(step.command))\n}\n"
                    script += "printf '\\n\\001END %d %d %d\\n' \(index) \(n) $?\n"
                }
            default: break
            }
            script += "printf '\\n\\001DONE %d\\n' \(index)\n"
        }
        script += "printf '\\001ALL\\n'\n"
        try script.write(toFile: sandbox + "/.doc-script.sh", atomically: true, encoding: .utf8)

        let (status, output) = try execute()
        failures += check(output: output, status: status, runnable: runnable, transcripts: transcripts)
        return failures
    }

    /// Shell blocks that are not run (no-run) must still be valid shell: `bash -n` on each.
    private func syntaxErrorsOfBlocksNotRun() -> [Failure] {
        var out: [Failure] = []
        for block in blocks where DocBlock.shellLanguages.contains(block.info.lowercased()) && !block.isRunnable {
            let file = sandbox + "/.syntax-\(block.line).sh"
            guard (try? block.text.write(toFile: file, atomically: true, encoding: .utf8)) != nil else { continue }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = ["-n", file]
            let pipe = Pipe()
            p.standardError = pipe
            guard (try? p.run()) != nil else { continue }
            let message = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            if p.terminationStatus != 0 {
                out.append(Failure(place: "\(block)", message: "not valid shell (bash -n):\n\(message)"))
            }
        }
        return out
    }

    // MARK: - Checking the output

    private func check(
        output: String, status: Int32, runnable: [(offset: Int, element: DocBlock)], transcripts: [Int: Transcript]
    ) -> [Failure] {
        var failures: [Failure] = []
        // Split the output at the markers.
        var blockOutput: [Int: String] = [:]
        var done: Set<Int> = []
        var commandOutput: [String: String] = [:]
        var commandStatus: [String: Int32] = [:]
        var currentBlock = -1
        var currentCommand: String?
        var buffer = ""
        for line in output.split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.first == "\u{1}" else {
                buffer += line + "\n"
                continue
            }
            let parts = line.dropFirst().split(separator: " ").map(String.init)
            switch parts.first {
            case "BLOCK":
                currentBlock = Int(parts[1]) ?? -1
                buffer = ""
            case "CMD":
                blockOutput[currentBlock, default: ""] += buffer
                currentCommand = parts[1] + " " + parts[2]
                buffer = ""
            case "END":
                if let c = currentCommand {
                    commandOutput[c] = String(buffer.dropLast())  // the newline printed before the marker
                    commandStatus[c] = Int32(parts[3]) ?? -1
                }
                currentCommand = nil
                buffer = ""
            case "DONE":
                blockOutput[currentBlock, default: ""] += buffer
                done.insert(currentBlock)
                buffer = ""
            default: break
            }
        }
        if currentBlock >= 0 && !done.contains(currentBlock) { blockOutput[currentBlock, default: ""] += buffer }

        for (index, block) in runnable {
            guard done.contains(index) else {
                let what = blockOutput[index] == nil ? "did not run (a block before it failed)" : "failed"
                failures.append(
                    Failure(
                        place: "\(block)",
                        message:
                            "\(what); shell exit \(status); output:\n\(tail(blockOutput[index] ?? output, 3000))"))
                break
            }
            guard let t = transcripts[index] else { continue }
            for (n, step) in t.steps.enumerated() {
                let key = "\(index) \(n)"
                let got = commandOutput[key] ?? ""
                let place = "\(document):\(step.line) `$ \(step.command.prefix(80))`"
                if commandStatus[key] != 0 {
                    failures.append(
                        Failure(
                            place: place,
                            message: "exit \(commandStatus[key].map(String.init) ?? "?") (a command in a console "
                                + "block must succeed; show a failure with ; echo \"exit $?\"); output:\n\(got)"))
                }
                let expected = step.expected.map { substitute($0) }
                if !Transcript.matches(expected: expected, actual: got) {
                    failures.append(
                        Failure(
                            place: place,
                            message: "output differs.\n--- the document shows:\n\(expected.joined(separator: "\n"))\n"
                                + "--- the command printed:\n\(got)"))
                }
            }
        }
        return failures
    }

    private func tail(_ s: String, _ n: Int) -> String { String(s.suffix(n)) }

    // MARK: - The sandbox and the shell

    private func substitute(_ text: String) -> String {
        var t = text
        for (from, to) in substitutions { t = t.replacingOccurrences(of: from, with: to) }
        return t
    }

    private func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    private func makeSandbox() throws {
        let fm = FileManager.default
        let root = TestPaths.packageRoot
        for entry in try fm.contentsOfDirectory(atPath: root) where ![".build", ".git", ".doc-blocks"].contains(entry) {
            try fm.createSymbolicLink(atPath: sandbox + "/" + entry, withDestinationPath: root + "/" + entry)
        }
        try fm.createDirectory(atPath: sandbox + "/.build", withIntermediateDirectories: true)
        for config in ["release", "debug"] {
            try fm.createSymbolicLink(
                atPath: sandbox + "/.build/" + config, withDestinationPath: TestPaths.binDirectory)
        }
        try fm.createDirectory(atPath: sandbox + "/.doc-blocks", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: sandbox + "/home", withIntermediateDirectories: true)
    }

    /// Runs the script in a new session (posix_spawn with POSIX_SPAWN_SETSID, reaped with waitpid: Foundation's
    /// Process can take a child whose descendants keep its descriptors for one still running); kills
    /// whatever the document left in that session.
    private func execute() throws -> (Int32, String) {
        let outPath = sandbox + "/.doc-output"
        var path = TestPaths.binDirectory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        if let python { path = python + ":" + path }
        let environment = [
            "PATH": path, "HOME": sandbox + "/home", "TZ": "UTC", "LANG": "C.UTF-8",
            "MEMORYD_SOCKET": substitute("/run/memoryd/memoryd.sock"), "TERM": "dumb",
        ]
        // A session of its own: killSession stops what the document left running (daemons, the emulator).
        let bash = try SpawnedProcess(
            "/bin/bash", [sandbox + "/.doc-script.sh"], environment: environment, output: outPath, truncate: true,
            newSession: true)
        let exitStatus = bash.wait(timeout: timeout)
        killSession(bash.pid)
        _ = bash.wait(timeout: 10)
        var output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        if exitStatus == nil { output += "\n(the document did not finish within \(Int(timeout)) s)\n" }
        return (exitStatus ?? -1, output)
    }

    /// SIGKILL to every process of session `sid` (the document's background jobs: daemons, the emulator).
    private func killSession(_ sid: Int32) {
        guard sid > 1 else { return }
        for _ in 0..<3 {
            var found = false
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = Int32(entry),
                    let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { continue }
                // Fields after "(comm)": state ppid pgrp session ...
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                if fields.count > 3, Int32(fields[3]) == sid {
                    kill(pid, SIGKILL)
                    found = true
                }
            }
            if !found { return }
            usleep(100_000)
        }
    }
}
