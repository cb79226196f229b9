import Foundation
import MemoryTestSupport
import MemoryUtilities
import XCTest

/// `memoryctl export`: every page, every type, agent data; export → import into an empty daemon gives back
/// the same entries. On every backend of MEMORYD_TEST_BACKENDS (default sqlite).
final class ExportTests: XCTestCase {
    static var backends: [String] {
        let v = ProcessInfo.processInfo.environment["MEMORYD_TEST_BACKENDS"] ?? ""
        return v.isEmpty ? ["sqlite"] : v.split(separator: ",").map(String.init)
    }

    /// A fresh daemon (embedding dimension 4) on `backend`, its own namespace on the emulator.
    func startDaemon(_ backend: String) throws -> DaemonProcess {
        var args: [String] = []
        if backend == "firestore" {
            try FirestoreEmulator.shared.ensureRunning()
            args = [
                "--backend", "firestore", "--emulator-host", FirestoreEmulator.shared.hostPort, "--project-id", "demo",
                "--namespace", "x" + UUID().uuidString.prefix(8).lowercased(),
            ]
        }
        let d = DaemonProcess(arguments: args, environment: ["MEMORYD_EMBEDDING_DIMENSION": "4"])
        try d.start()
        return d
    }

    func ctl(_ d: DaemonProcess, _ args: [String], stdin: String? = nil) throws -> CommandResult {
        try memoryctl(args, socket: d.socketPath, stdin: stdin)
    }

    func testExportReadsEveryPageTypeAndAgentDataAndImportsBackEqual() throws {
        for backend in Self.backends {
            let source = try startDaemon(backend)
            defer {
                source.stop()
                source.removeDirectory()
            }
            // dave: 25 items over three types (more than one page at --page-size 7), with and without
            // embeddings, metadata, expirations; someone else's; agent data of two agents.
            var lines: [String] = []
            for i in 0..<25 {
                let type = ["conversation", "note", "fact"][i % 3]
                var o: [String: JSONValue] = [
                    "id": .string("d\(i)"), "user_id": .string("dave"), "item_type": .string(type),
                    "text_content": .string("item \(i)"), "session_id": .string(i % 2 == 0 ? "s1" : ""),
                    "timestamp": .string("2026-01-01T00:00:\(String(format: "%02d", i)).123456Z"),
                    "metadata": .object(["n": .number(Double(i)), "tags": .array([.string("a"), .bool(true)])]),
                ]
                if i % 4 == 0 { o["embedding"] = .array([0.1, -0.25, 3.5, Double(i)].map { .number($0) }) }
                if i % 5 == 0 { o["expiration"] = .string("2099-06-01T12:00:00.5Z") }
                if i % 6 == 0 { o["persona_active"] = .string("coach") }
                lines.append(JSONValue.object(o).serialized())
            }
            lines.append(#"{"id": "e1", "user_id": "erin", "text_content": "not dave's"}"#)
            lines.append(
                #"{"id": "a1", "agent_id": "planner", "data_type": "plan", "content": {"steps": [1, 2]}, "metadata": {"k": "v"}, "timestamp": "2026-02-01T00:00:00Z"}"#
            )
            lines.append(
                #"{"id": "a2", "agent_id": "critic", "data_type": "note", "content": "plain", "expiration": "2099-01-01T00:00:00Z"}"#
            )
            let load = try ctl(source, ["import", "-"], stdin: lines.joined(separator: "\n"))
            XCTAssertEqual(load.stdout, "imported 28, already present 0, failed 0\n", "\(backend): \(load)")

            // dave alone: all 25 items, every type, every page; no agent data unless asked.
            let dave = try ctl(source, ["export", "--user", "dave", "--page-size", "7"])
            XCTAssertEqual(dave.status, 0, "\(dave)")
            XCTAssertEqual(dave.stdout.lines.filter { !$0.isEmpty }.count, 25, "\(backend): \(dave.stdout)")
            XCTAssertEqual(dave.stderr, "", "no progress when stderr is not a terminal")
            let withData = try ctl(source, ["export", "--user", "dave", "--agent-data", "--page-size", "7"])
            XCTAssertEqual(withData.stdout.lines.filter { !$0.isEmpty }.count, 27)
            XCTAssertEqual(
                try ctl(source, ["export", "--user", "dave", "--type", "note"]).stdout.lines.filter { !$0.isEmpty }
                    .count, 8)

            // Everything → an empty daemon → the same export.
            let all = try ctl(source, ["export", "--page-size", "4"])
            XCTAssertEqual(all.status, 0, "\(all)")
            XCTAssertEqual(all.stdout.lines.filter { !$0.isEmpty }.count, 28)
            let target = try startDaemon(backend)
            defer {
                target.stop()
                target.removeDirectory()
            }
            let imported = try ctl(target, ["import", "-"], stdin: all.stdout)
            XCTAssertEqual(imported.stdout, "imported 28, already present 0, failed 0\n", "\(backend): \(imported)")
            let again = try ctl(target, ["export", "--page-size", "1000"])
            XCTAssertEqual(
                Set(again.stdout.lines.filter { !$0.isEmpty }), Set(all.stdout.lines.filter { !$0.isEmpty }),
                "\(backend): export → import → export gives the same lines")
            // Each field as it was given (ids, timestamps, expirations, embeddings, metadata).
            let d4 = try XCTUnwrap(try ctl(target, ["get", "d4", "--json"]).json)
            XCTAssertEqual(d4["timestamp"], .string("2026-01-01T00:00:04.123456Z"))
            XCTAssertEqual(d4["embedding"], .array([0.1, -0.25, 3.5, 4].map { .number($0) }))
            XCTAssertEqual(d4["metadata"]?["tags"], .array([.string("a"), .bool(true)]))
            let d0 = try XCTUnwrap(try ctl(target, ["get", "d0", "--json"]).json)
            XCTAssertEqual(d0["expiration"], .string("2099-06-01T12:00:00.500000Z"))
            XCTAssertEqual(d0["persona_active"], .string("coach"))
            let a1 = try XCTUnwrap(try ctl(target, ["agent-data", "get", "a1", "--json"]).json)
            XCTAssertEqual(a1["content"], .object(["steps": .array([.number(1), .number(2)])]))
            XCTAssertEqual(a1["timestamp"], .string("2026-02-01T00:00:00.000000Z"))

            // Importing the same export again adds nothing.
            XCTAssertEqual(
                try ctl(target, ["import", "-"], stdin: all.stdout).stdout, "imported 0, already present 28, failed 0\n"
            )
        }
    }

    /// Progress on stderr only when it is a terminal (a pty from script(1)); stdout stays the data.
    func testExportShowsProgressOnATerminal() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else {
            throw XCTSkip("script(1) is missing")
        }
        let d = try startDaemon("sqlite")
        defer {
            d.stop()
            d.removeDirectory()
        }
        let lines = (0..<30).map { "{\"id\": \"p\($0)\", \"user_id\": \"p\", \"text_content\": \"n\($0)\"}" }
        XCTAssertEqual(try ctl(d, ["import", "-"], stdin: lines.joined(separator: "\n")).status, 0)
        let out = d.directory + "/out.jsonl"
        let command =
            "\(TestPaths.binary("memoryctl")) export --page-size 10 --socket \(d.socketPath) > \(out)"
        let r = try runProcess("/usr/bin/script", ["-qec", command, "/dev/null"])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains("exporting: 10 items, 0 agent data"), r.stdout)
        XCTAssertTrue(r.stdout.contains("exported 30 items and 0 agent data"), r.stdout)
        let written = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssertEqual(written.lines.filter { !$0.isEmpty }.count, 30)
        XCTAssertFalse(written.contains("exporting"))
    }

    func testExportUsageErrors() throws {
        for args in [
            ["export", "--type", "note", "--all-types"], ["export", "--no-items", "--user", "u"],
            ["export", "--page-size", "0"], ["export", "--user", ""],
        ] {
            let r = try memoryctl(args, socket: "/nonexistent.sock")
            XCTAssertEqual(r.status, 64, "\(args)\n\(r)")
        }
    }
}
