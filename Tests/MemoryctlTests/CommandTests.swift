import Foundation
import MemoryTestSupport
import MemoryUtilities
import XCTest

/// Every memoryctl command end to end: a real daemon, the built binary, output and exit status.
final class CommandTests: MemoryctlTestCase {
    func testPingPrintsVersionAndRoundTrip() throws {
        let r = try expect(0, ["ping"])
        XCTAssertTrue(r.stdout.hasPrefix("memoryd 0.1.0 on \(daemon.socketPath): round trip "), r.stdout)
        XCTAssertTrue(r.stdout.contains(" ms, up "), r.stdout)
        XCTAssertEqual(r.stderr, "")

        let j = try XCTUnwrap(try expect(0, ["ping", "--json"]).json)
        XCTAssertEqual(j["server_version"], .string("0.1.0"))
        XCTAssertNotNil(j["latency_ms"]?.numberValue)
        XCTAssertNotNil(j["uptime_ms"]?.numberValue)
    }

    func testGlobalOptionsBeforeOrAfterTheCommand() throws {
        let s = daemon.socketPath
        for args in [
            ["--socket", s, "--json", "ping"], ["ping", "--json", "--socket", s], ["--socket=\(s)", "ping", "--json"],
            ["--json", "--timeout", "5", "--socket", s, "agent-data", "list", "--agent", "a"],
            ["agent-data", "list", "--agent", "a", "--timeout=5", "--json", "--socket", s],
        ] {
            let r = try memoryctl(args)  // no $MEMORYD_SOCKET: --socket must have been used
            XCTAssertEqual(r.status, 0, "\(args)\n\(r)")
            XCTAssertNotNil(r.json, "\(args): one JSON document\n\(r)")
        }
    }

    func testAddGetDeleteWithEveryFlag() throws {
        let add = try expect(
            0,
            [
                "add", "--user", "alice", "--session", "s1", "--type", "note", "--persona", "tutor",
                "--text", "likes green tea", "--embedding", "0.1,0.2,0.3,0.4", "--metadata", "n=3",
                "--metadata", "source=chat", "--metadata", "tags=[\"a\",\"b\"]", "--id", "mem_tea",
                "--expires-in", "3600",
            ])
        XCTAssertEqual(add.stdout, "mem_tea\n")

        let get = try expect(0, ["get", "mem_tea"])
        let text = get.stdout
        for expected in [
            "id         mem_tea", "user       alice", "session    s1", "type       note", "persona    tutor",
            "embedding  4 values [0.1, 0.2, 0.3, 0.4]", "n=3", "source=chat", "text       likes green tea",
        ] {
            XCTAssertTrue(text.contains(expected), "\(expected) in\n\(text)")
        }
        XCTAssertTrue(text.contains("expires    20"), text)

        let j = try XCTUnwrap(try expect(0, ["get", "mem_tea", "--json"]).json?.objectValue)
        XCTAssertEqual(Set(j.keys), memoryItemFields)
        XCTAssertEqual(j["user_id"], .string("alice"))
        XCTAssertEqual(j["item_type"], .string("note"))
        XCTAssertEqual(j["persona_active"], .string("tutor"))
        XCTAssertEqual(j["embedding"], .array([.number(0.1), .number(0.2), .number(0.3), .number(0.4)]))
        XCTAssertEqual(j["metadata"]?["n"], .number(3))
        XCTAssertEqual(j["metadata"]?["source"], .string("chat"))
        XCTAssertEqual(j["metadata"]?["tags"], .array([.string("a"), .string("b")]))
        XCTAssertNotNil(j["metadata"]?["content_hash"])
        let ts = try XCTUnwrap(j["timestamp"]?.stringValue)
        XCTAssertTrue(ts.hasSuffix("Z"), "RFC 3339 UTC: \(ts)")
        let t = try XCTUnwrap(Timestamp(rfc3339: ts))
        let exp = try XCTUnwrap(j["expiration"]?.stringValue.flatMap { Timestamp(rfc3339: $0) })
        XCTAssertEqual(Double(exp.seconds - t.seconds), 3600, accuracy: 5)

        XCTAssertEqual(try expect(0, ["delete", "mem_tea"]).stdout, "deleted mem_tea\n")
        let gone = try expect(4, ["get", "mem_tea"])
        XCTAssertEqual(gone.stdout, "")
        XCTAssertTrue(gone.stderr.hasPrefix("error: NotFoundError: "), gone.stderr)
        XCTAssertEqual(gone.stderr.lines.filter { !$0.isEmpty }.count, 1, "one line")
    }

    func testAddFromEmbeddingFileUpsertAndRejectDuplicate() throws {
        let file = daemon.directory + "/e.csv"
        try "0.5 0.5\n0.5, 0.5\n".write(toFile: file, atomically: true, encoding: .utf8)
        let id = try expect(0, ["add", "--user", "u", "--text", "one", "--embedding-file", file]).stdout.trimmed
        XCTAssertTrue(id.hasPrefix("mem_"), id)
        XCTAssertEqual(try expect(0, ["get", id, "--json"]).json?["embedding"]?.arrayValue?.count, 4)

        try expect(0, ["add", "--id", "fixed", "--user", "u", "--text", "first"])
        try expect(5, ["add", "--id", "fixed", "--user", "u", "--text", "second"])
        try expect(0, ["add", "--id", "fixed", "--user", "u", "--text", "second", "--upsert"])
        XCTAssertEqual(try expect(0, ["get", "fixed", "--json"]).json?["text_content"], .string("second"))

        let dup = try expect(5, ["add", "--user", "u", "--text", "second", "--reject-duplicate"])
        XCTAssertTrue(dup.stderr.hasPrefix("error: DuplicateError: "), dup.stderr)
        try expect(64, ["add", "--user", "u", "--embedding", "1,2,3,4", "--embedding-file", file])
        try expect(64, ["add", "--user", "u", "--embedding-file", daemon.directory + "/missing.csv"])
        try expect(64, ["add", "--user", "u", "--embedding", "1,x,3,4"])
    }

    func testHistoryTableJSONFiltersAndPages() throws {
        let long = String(repeating: "word ", count: 60) + "END"
        for (i, session) in ["s1", "s2", "s1"].enumerated() {
            try expect(
                0,
                ["add", "--user", "hist", "--session", session, "--id", "h\(i)", "--text", i == 2 ? long : "text \(i)"])
        }
        let table = try expect(0, ["history", "--user", "hist"]).stdout.lines.filter { !$0.isEmpty }
        XCTAssertEqual(table.count, 4, table.joined(separator: "\n"))
        XCTAssertTrue(table[0].hasPrefix("TIME "), table[0])
        for column in ["ID", "SESSION", "PERSONA", "TEXT"] { XCTAssertTrue(table[0].contains(column), table[0]) }
        XCTAssertTrue(
            table[1].contains("h2") && table[2].contains("h1") && table[3].contains("h0"), "newest first:\n\(table)")
        XCTAssertTrue(table[1].hasSuffix("…") && !table[1].contains("END"), "long text shortened: \(table[1])")
        // Columns line up: every row's ID starts where the header's does.
        let idColumn = table[0].range(of: "ID")!.lowerBound.utf16Offset(in: table[0])
        for row in table.dropFirst() {
            XCTAssertEqual(row.range(of: " h")!.upperBound.utf16Offset(in: row) - 1, idColumn, row)
        }

        XCTAssertTrue(try expect(0, ["history", "--user", "hist", "--full"]).stdout.contains("END"))
        let s1 = try expect(0, ["history", "--user", "hist", "--session", "s1", "--json"])
        let items = try XCTUnwrap(s1.json?["items"]?.arrayValue)
        XCTAssertEqual(items.compactMap { $0["id"]?.stringValue }, ["h2", "h0"])
        for item in items { XCTAssertEqual(Set(item.objectValue!.keys), memoryItemFields) }
        XCTAssertEqual(s1.json?["next_page_token"], .string(""))

        let page1 = try expect(0, ["history", "--user", "hist", "--limit", "2"]).stdout
        let token = try XCTUnwrap(page1.lines.first { $0.hasPrefix("more: --page-token ") }).dropFirst(
            "more: --page-token ".count)
        let page2 = try expect(
            0, ["history", "--user", "hist", "--limit", "2", "--page-token", String(token), "--json"])
        XCTAssertEqual(page2.json?["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue }, ["h0"])

        let filtered = try expect(0, ["history", "--user", "hist", "--filter", "session_id=s2", "--json"])
        XCTAssertEqual(filtered.json?["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue }, ["h1"])
        XCTAssertEqual(try expect(0, ["history", "--user", "nobody"]).stdout, "no items\n")
        try expect(64, ["history"])  // --user is required
    }

    func testSearchBestFirstWithMeasuresAndMinScore() throws {
        try expect(0, ["add", "--user", "s", "--id", "near", "--text", "near", "--embedding", "1,0,0,0"])
        try expect(
            0, ["add", "--user", "s", "--id", "far", "--text", "far", "--embedding", "0,1,0,0", "--persona", "p"])
        let table = try expect(0, ["search", "--user", "s", "--embedding", "0.9,0.1,0,0"]).stdout.lines.filter {
            !$0.isEmpty
        }
        XCTAssertTrue(table[0].hasPrefix("SCORE"), table[0])
        XCTAssertTrue(table[1].contains("near") && table[2].contains("far"), table.joined(separator: "\n"))

        let j = try expect(0, ["search", "--user", "s", "--embedding", "0.9,0.1,0,0", "--json", "--top-k", "1"]).json
        let results = try XCTUnwrap(j?["results"]?.arrayValue)
        XCTAssertEqual(results.count, 1)
        XCTAssertEqual(results[0]["item"]?["id"], .string("near"))
        XCTAssertEqual(Set(results[0]["item"]!.objectValue!.keys), memoryItemFields)
        XCTAssertGreaterThan(results[0]["score"]?.numberValue ?? 0, 0.9)

        let euclid = try expect(
            0, ["search", "--user", "s", "--embedding", "0,1,0,0", "--measure", "euclidean", "--json"]
        ).json
        XCTAssertEqual(euclid?["results"]?.arrayValue?.first?["item"]?["id"], .string("far"))
        XCTAssertEqual(euclid?["results"]?.arrayValue?.first?["score"], .number(0))
        let strict = try expect(0, ["search", "--user", "s", "--embedding", "1,0,0,0", "--min-score", "0.5", "--json"])
            .json
        XCTAssertEqual(strict?["results"]?.arrayValue?.count, 1)
        let persona = try expect(0, ["search", "--user", "s", "--embedding", "1,0,0,0", "--persona", "p", "--json"])
            .json
        XCTAssertEqual(persona?["results"]?.arrayValue?.compactMap { $0["item"]?["id"]?.stringValue }, ["far"])
        XCTAssertEqual(try expect(0, ["search", "--user", "nobody", "--embedding", "1,0,0,0"]).stdout, "no results\n")

        try expect(64, ["search", "--user", "s"])  // no embedding
        try expect(64, ["search", "--user", "s", "--embedding", "1,0,0,0", "--measure", "manhattan"])
        try expect(3, ["search", "--user", "s", "--embedding", "1,0"])  // wrong size: the daemon's ValidationError
    }

    func testAgentDataAddGetList() throws {
        let id = try expect(
            0,
            [
                "agent-data", "add", "--agent", "planner", "--type", "plan", "--content",
                "{\"steps\": [\"search\", \"answer\"]}",
                "--metadata", "v=2",
            ]
        ).stdout.trimmed
        XCTAssertTrue(id.hasPrefix("agent_"), id)
        try expect(
            0, ["agent-data", "add", "--agent", "planner", "--type", "note", "--content", "\"plain\"", "--id", "ad2"])

        let get = try expect(0, ["agent-data", "get", id]).stdout
        for expected in ["agent     planner", "type      plan", "\"steps\"", "v=2"] {
            XCTAssertTrue(get.contains(expected), "\(expected) in\n\(get)")
        }
        let j = try XCTUnwrap(try expect(0, ["agent-data", "get", id, "--json"]).json?.objectValue)
        XCTAssertEqual(Set(j.keys), agentDataFields)
        XCTAssertEqual(j["content"], .object(["steps": .array([.string("search"), .string("answer")])]))

        let list = try expect(0, ["agent-data", "list", "--agent", "planner"]).stdout.lines.filter { !$0.isEmpty }
        XCTAssertEqual(list.count, 3, list.joined(separator: "\n"))
        XCTAssertTrue(
            list[0].hasPrefix("TIME") && list[1].contains("ad2") && list[2].contains(id), list.joined(separator: "\n"))
        let plans = try expect(0, ["agent-data", "list", "--agent", "planner", "--type", "plan", "--json"]).json
        XCTAssertEqual(plans?["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue }, [id])

        try expect(64, ["agent-data", "add", "--agent", "a", "--type", "t", "--content", "not json"])
        try expect(4, ["agent-data", "get", "agent_missing"])
    }

    func testCleanupExpired() throws {
        try expect(0, ["add", "--user", "x", "--id", "short", "--expires-in", "0.3"])
        try expect(0, ["add", "--user", "x", "--id", "long", "--expires-in", "3600"])
        usleep(600_000)
        try expect(4, ["get", "short"])  // invisible once expired, before cleanup
        XCTAssertEqual(
            try expect(0, ["cleanup-expired"]).stdout, "deleted 1 expired entry (memory items and agent data)\n")
        XCTAssertEqual(try expect(0, ["cleanup-expired", "--json"]).json, .object(["deleted_count": .number(0)]))
        try expect(0, ["get", "long"])
    }

    func testHealthStatusFirstThenAlignedDetails() throws {
        let r = try expect(0, ["health"])
        let lines = r.stdout.lines.filter { !$0.isEmpty }
        XCTAssertTrue(lines[0].hasPrefix("memoryd is healthy (sqlite backend, memoryd 0.1.0, up "), lines[0])
        let details = lines.dropFirst()
        XCTAssertGreaterThan(details.count, 8)
        // Every value starts in the same column.
        let columns = Set(
            details.map { line -> Int in
                let afterKey = line.dropFirst(2).firstIndex(of: " ")!
                return line[afterKey...].firstIndex { $0 != " " }!.utf16Offset(in: line)
            })
        XCTAssertEqual(columns.count, 1, r.stdout)
        for key in [
            "backend", "version", "uptime_s", "circuit_state", "connection_pool_size", "queue_depth", "error_count",
        ] {
            XCTAssertTrue(details.contains { $0.hasPrefix("  \(key) ") }, "\(key) in\n\(r.stdout)")
        }

        // A figure that reads like data loss after a restart says what it means.
        XCTAssertTrue(
            details.contains { $0.hasPrefix("  indexed_vectors ") && $0.contains("loaded on a user's first search") },
            r.stdout)

        let j = try XCTUnwrap(try expect(0, ["health", "--json"]).json?.objectValue)
        XCTAssertEqual(Set(j.keys), ["status", "firestore", "details"])
        XCTAssertEqual(j["status"], .string("healthy"))
        XCTAssertEqual(j["firestore"], .bool(false))
        XCTAssertEqual(j["details"]?["backend"], .string("sqlite"))
    }

    func testImportReportsBadLinesAndGoesOn() throws {
        let input = """
            {"id": "i1", "user_id": "imp", "text_content": "one", "embedding": [1, 0, 0, 0], "metadata": {"k": "v"}}

            {this is not json
            {"id": "i2", "user_id": "imp", "text": "typo in a field name"}
            {"id": "i3", "user_id": "imp", "embedding": [1, 2]}
            {"id": "i4", "user_id": "imp", "text_content": "four", "timestamp": "2026-01-02T03:04:05Z"}
            """
        let file = daemon.directory + "/in.jsonl"
        try input.write(toFile: file, atomically: true, encoding: .utf8)
        let r = try expect(3, ["import", file])
        XCTAssertEqual(r.stdout, "imported 2, already present 0, failed 3\n")
        let errs = r.stderr.lines.filter { !$0.isEmpty }
        XCTAssertEqual(errs.count, 3, r.stderr)
        XCTAssertTrue(errs[0].hasPrefix("line 3: ValidationError: not valid JSON"), errs[0])
        XCTAssertTrue(errs[1].hasPrefix("line 4: ValidationError: unknown field \"text\""), errs[1])
        XCTAssertTrue(errs[2].hasPrefix("line 5: ValidationError: ") && errs[2].contains("embedding"), errs[2])
        XCTAssertEqual(
            try expect(0, ["get", "i4", "--json"]).json?["timestamp"], .string("2026-01-02T03:04:05.000000Z"))
        XCTAssertEqual(try expect(0, ["get", "i1", "--json"]).json?["metadata"]?["k"], .string("v"))

        // --json: one document with the failures; stdin as "-".
        let j = try expect(3, ["import", "-", "--json", "--upsert"], stdin: input)
        XCTAssertEqual(j.json?["imported"], .number(2))
        XCTAssertEqual(j.json?["failures"]?.arrayValue?.compactMap { $0["line"]?.numberValue }, [3, 4, 5])

        // An export (history --json) imports again as it is, in several chunks.
        let many = (0..<1203).map { "{\"id\": \"bulk\($0)\", \"user_id\": \"bulk\", \"text_content\": \"item \($0)\"}" }
            .joined(separator: "\n")
        XCTAssertEqual(
            try expect(0, ["import", "-", "--chunk-size", "500"], stdin: many).stdout,
            "imported 1203, already present 0, failed 0\n")
        let exported = try XCTUnwrap(
            try expect(0, ["history", "--user", "bulk", "--limit", "3", "--json"]).json?["items"]?.arrayValue)
        let lines = exported.map { $0.serialized() }.joined(separator: "\n")
        XCTAssertEqual(
            try expect(0, ["import", "-", "--upsert"], stdin: lines).stdout, "imported 3, already present 0, failed 0\n"
        )
        try expect(64, ["import", daemon.directory + "/missing.jsonl"])
    }

    /// Lines without ids get ids derived from their content: a second run (after fixing a bad line) adds
    /// only the fixed line. Lines without timestamps keep the file's order in history.
    func testImportRerunAddsNothingAndKeepsFileOrder() throws {
        var lines = (1...6).map { "{\"user_id\": \"ord\", \"text_content\": \"line \($0)\"}" }
        lines.append("{\"user_id\": \"ord\", \"text_content\": \"line 1\"}")  // the same text again: its own item
        lines.append("{\"user_id\": \"ord\", \"txt\": \"a typo\"}")
        lines.append("{\"agent_id\": \"planner\", \"data_type\": \"plan\", \"content\": {\"steps\": 2}}")
        let first = try expect(3, ["import", "-"], stdin: lines.joined(separator: "\n"))
        XCTAssertEqual(first.stdout, "imported 8, already present 0, failed 1\n", "\(first)")
        XCTAssertTrue(first.stderr.hasPrefix("line 8: ValidationError: unknown field \"txt\""), first.stderr)

        lines[7] = "{\"user_id\": \"ord\", \"text_content\": \"line 8\"}"
        let again = try expect(0, ["import", "-"], stdin: lines.joined(separator: "\n"))
        XCTAssertEqual(again.stdout, "imported 1, already present 8, failed 0\n", "\(again)")
        XCTAssertEqual(
            try expect(0, ["import", "-"], stdin: lines.joined(separator: "\n")).stdout,
            "imported 0, already present 9, failed 0\n")

        let history = try XCTUnwrap(
            try expect(0, ["history", "--user", "ord", "--json"]).json?["items"]?.arrayValue)
        // Newest first: the file read bottom up (the fixed line came in the second run, so it is newest).
        XCTAssertEqual(
            history.compactMap { $0["text_content"]?.stringValue },
            ["line 8", "line 1", "line 6", "line 5", "line 4", "line 3", "line 2", "line 1"])
        XCTAssertTrue(history.allSatisfy { $0["id"]?.stringValue?.hasPrefix("imp_") == true })
        let agent = try XCTUnwrap(
            try expect(0, ["agent-data", "list", "--agent", "planner", "--json"]).json?["items"]?.arrayValue)
        XCTAssertEqual(agent.count, 1)
        XCTAssertEqual(agent.first?["content"], .object(["steps": .number(2)]))

        // Explicit ids that exist: already present with the same content, else a failure unless
        // --skip-existing (or --upsert).
        let explicit = "{\"id\": \"given\", \"user_id\": \"ord\", \"text_content\": \"x\"}"
        try expect(0, ["import", "-"], stdin: explicit)
        XCTAssertEqual(
            try expect(0, ["import", "-"], stdin: explicit).stdout, "imported 0, already present 1, failed 0\n")
        let changed = "{\"id\": \"given\", \"user_id\": \"ord\", \"text_content\": \"y\"}"
        XCTAssertTrue(try expect(5, ["import", "-"], stdin: changed).stderr.contains("line 1: DuplicateError"))
        XCTAssertEqual(
            try expect(0, ["import", "-", "--skip-existing"], stdin: changed).stdout,
            "imported 0, already present 1, failed 0\n")
    }

    /// Progress goes to stderr only when it is a terminal (here a pty from script(1)).
    func testImportShowsProgressOnATerminal() throws {
        try Requirement.require(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/script"),
            "script(1) is not installed (apt-get install bsdutils)")
        let file = daemon.directory + "/p.jsonl"
        try (0..<30).map { "{\"user_id\": \"p\", \"text_content\": \"n\($0)\"}" }.joined(separator: "\n")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let command = "\(TestPaths.binary("memoryctl")) import \(file) --chunk-size 10 --socket \(daemon.socketPath)"
        let r = try runProcess("/usr/bin/script", ["-qec", command, "/dev/null"])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains("importing: 10 imported, 0 already present, 0 failed"), r.stdout)
        XCTAssertTrue(r.stdout.contains("imported 30, already present 0, failed 0"), r.stdout)
    }
}
