import Foundation
import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The original manager's users moving to memoryd with their data: documents written by Google's official
/// Python client the way the old manager wrote them, read through a real daemon, converted by a real
/// `memoryd migrate`, against the real emulator; and namespaces copied between sqlite and Firestore.
final class MigrationTests: XCTestCase {
    static let project = "memoryd-test"

    func newNamespace() -> String { "mg" + IDGenerator.uuid().prefix(8) }

    /// Runs `memoryd migrate ARGS` configured for the emulator and `namespace`, with a clean environment.
    func migrate(
        _ arguments: [String], namespace: String, dimension: Int = 8, extraEnv: [String: String] = [:]
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let dir = TestPaths.makeTempDirectory("mg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = FileManager.default.createFile(atPath: dir + "/empty.toml", contents: Data())
        var env = migrateEnvironment(namespace: namespace, dimension: dimension)
        for (k, v) in extraEnv { env[k] = v }
        return try runToEnd(
            TestPaths.binary("memoryd"), ["migrate", "--config", dir + "/empty.toml"] + arguments, environment: env,
            inherit: false)
    }

    func migrateEnvironment(namespace: String, dimension: Int) -> [String: String] {
        [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "MEMORYD_FIRESTORE_EMULATOR_HOST": FirestoreEmulator.shared.hostPort,
            "MEMORYD_FIRESTORE_PROJECT_ID": Self.project, "MEMORYD_NAMESPACE": namespace,
            "MEMORYD_EMBEDDING_DIMENSION": String(dimension),
        ]
    }

    func lastLine(_ s: String) -> String { String(s.split(separator: "\n").last ?? "") }

    func firestoreDaemon(namespace: String, dimension: Int = 8) throws -> DaemonProcess {
        // No read cache: the test reads what Firestore holds right after each migration.
        try startDaemon(
            ["MEMORYD_NAMESPACE": namespace, "MEMORYD_CACHE_MAX_BYTES": "0"], dimension: dimension,
            backend: "firestore")
    }

    /// The embedding of a dumped document as doubles (list or vector alike), and whether it was a vector.
    func embedding(_ doc: Any?) -> (values: [Double], isVector: Bool)? {
        guard let fields = doc as? [String: Any], let e = fields["embedding"] else { return nil }
        func number(_ x: Any) -> Double? {
            if let d = x as? [String: Any], let s = d["__double__"] as? String { return Double(s) }
            return (x as? NSNumber)?.doubleValue
        }
        if let v = e as? [String: Any], let list = v["__vector__"] as? [Any] {
            return (list.compactMap(number), true)
        }
        if let list = e as? [Any] { return (list.compactMap(number), false) }
        return nil
    }

    /// A dumped document without what a conversion may change: the embedding's shape and a filled content
    /// hash (metadata that holds nothing else reads as absent).
    func withoutConvertedFields(_ doc: Any?) -> NSDictionary {
        var fields = doc as? [String: Any] ?? [:]
        fields["embedding"] = nil
        if var metadata = fields["metadata"] as? [String: Any] {
            metadata["content_hash"] = nil
            fields["metadata"] = metadata.isEmpty ? nil : metadata
        } else {
            fields["metadata"] = nil
        }
        return fields as NSDictionary
    }

    // MARK: - Reading the old shape, then searching after the migration

    func testOldDocumentsAreReadBeforeAndFoundBySearchOnlyAfterTheMigration() throws {
        try FirestoreEmulator.shared.ensureRunning()
        let ns = newNamespace()
        try V1Documents.write(project: Self.project, namespace: ns, count: 20, agents: 4, dimension: 8)
        let before = try V1Documents.dump(project: Self.project, collection: "\(ns)_memory_items")
        XCTAssertEqual(before.count, 20)
        XCTAssertEqual(embedding(before["mem_v1_000001"])?.isVector, false, "the old manager stored plain lists")
        let original = try XCTUnwrap(embedding(before["mem_v1_000001"])).values

        let daemon = try firestoreDaemon(namespace: ns)
        defer { daemon.stop() }
        let client = try daemon.client()
        defer { client.close() }

        // Get: missing and null optional fields read as empty, the list as the embedding, "message" kept.
        let item = try client.getMemoryItem("mem_v1_000001")
        XCTAssertEqual(item.userID, "user1")
        XCTAssertEqual(item.sessionID, "")
        XCTAssertEqual(item.personaActive, "")
        XCTAssertEqual(item.itemType, "message")
        XCTAssertNil(item.expiration)
        XCTAssertEqual(item.embedding, original.map(Float.init))
        XCTAssertNotNil(item.timestamp)
        let integers = try client.getMemoryItem("mem_v1_000003")
        XCTAssertEqual(integers.embedding, embedding(before["mem_v1_000003"])!.values.map(Float.init))
        XCTAssertTrue(integers.embedding.allSatisfy { $0 == $0.rounded() }, "integer values read as numbers")

        // History of the old type, newest first; lists; agent data.
        let history = try client.conversationHistory(HistoryRequest(userID: "user1", limit: 100, itemType: "message"))
        XCTAssertEqual(history.items.map(\.id), [19, 16, 13, 10, 7, 4, 1].map { String(format: "mem_v1_%06d", $0) })
        XCTAssertEqual(history.items.last?.embedding, original.map(Float.init))
        let sessions = try client.conversationHistory(
            HistoryRequest(userID: "user0", sessionID: "s0", limit: 100, itemType: "message"))
        XCTAssertEqual(sessions.items.map(\.id), [12, 0].map { String(format: "mem_v1_%06d", $0) })
        let all = try client.listMemoryItems(ListMemoryItemsRequest(limit: 100))
        XCTAssertEqual(all.items.count, 20)
        XCTAssertEqual(all.items.first?.id, "mem_v1_000000", "oldest first")
        let agents = try client.listAgentData(ListAgentDataRequest(agentID: "agent0", limit: 10))
        XCTAssertEqual(agents.items.map(\.id), ["mem_v1_agent_000002", "mem_v1_agent_000000"])
        XCTAssertEqual(agents.items.last?.content, .object(["step": .number(0), "note": .string("saw 0")]))
        XCTAssertEqual(try client.getAgentData("mem_v1_agent_000001").agentID, "agent1")

        // Search cannot see plain lists: that is what the migration is for.
        let query = SearchRequest(userID: "user1", queryEmbedding: original.map(Float.init), topK: 3)
        XCTAssertEqual(try client.semanticSearch(query).map(\.item.id), [])

        // A dry run counts and writes nothing.
        let dry = try migrate(["--from", "v1", "--dry-run"], namespace: ns)
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertEqual(lastLine(dry.stdout), "scanned 24, converted 20, current 4, failed 0")
        XCTAssertEqual(try client.semanticSearch(query).map(\.item.id), [])

        let run = try migrate(["--from", "v1"], namespace: ns)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(lastLine(run.stdout), "scanned 24, converted 20, current 4, failed 0")
        XCTAssertFalse(run.stderr.contains("\r"), "no progress line when stderr is not a terminal")

        let hits = try client.semanticSearch(query)
        XCTAssertEqual(hits.first?.item.id, "mem_v1_000001")
        XCTAssertEqual(hits.first?.score ?? 0, 1, accuracy: 1e-5)
        let after = try client.getMemoryItem("mem_v1_000001")
        XCTAssertEqual(after.embedding, item.embedding)
        XCTAssertEqual(after.contentHash, SHA256.hexDigest(item.textContent))
        XCTAssertEqual(after.itemType, "message")
        let converted = try V1Documents.dump(project: Self.project, collection: "\(ns)_memory_items")
        XCTAssertEqual(embedding(converted["mem_v1_000001"])?.isVector, true)
        XCTAssertEqual(embedding(converted["mem_v1_000001"])?.values, original, "the same doubles, bit for bit")
        for (id, doc) in before {
            XCTAssertEqual(withoutConvertedFields(converted[id]), withoutConvertedFields(doc), id)
        }
        // The duplicate check now finds old texts.
        let dup = try client.checkDuplicate(MemoryItem(userID: "user1", textContent: item.textContent))
        XCTAssertEqual(dup.existingID, "mem_v1_000001")

        let again = try migrate(["--from", "v1"], namespace: ns)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(lastLine(again.stdout), "scanned 24, converted 0, current 24, failed 0")
    }

    // MARK: - Rollback

    func testRevertThenMigrateRoundTrips() throws {
        try FirestoreEmulator.shared.ensureRunning()
        let ns = newNamespace()
        let collection = "\(ns)_memory_items"
        try V1Documents.write(project: Self.project, namespace: ns, count: 30, agents: 2, dimension: 8, seed: 7)
        let original = try V1Documents.dump(project: Self.project, collection: collection)

        XCTAssertEqual(try migrate(["--from", "v1"], namespace: ns).status, 0)
        let migrated = try V1Documents.dump(project: Self.project, collection: collection)

        let revert = try migrate(["--from", "v1", "--revert"], namespace: ns)
        XCTAssertEqual(revert.status, 0, revert.stderr)
        XCTAssertEqual(lastLine(revert.stdout), "scanned 32, converted 30, current 2, failed 0")
        let reverted = try V1Documents.dump(project: Self.project, collection: collection)
        for (id, doc) in original {
            // The old manager's shape again: plain lists of the same numbers; only content_hash was added.
            let e = try XCTUnwrap(embedding(reverted[id]), id)
            XCTAssertFalse(e.isVector, id)
            XCTAssertEqual(e.values, embedding(doc)?.values, id)
            XCTAssertEqual(withoutConvertedFields(reverted[id]), withoutConvertedFields(doc), id)
        }
        let revertAgain = try migrate(["--from", "v1", "--revert"], namespace: ns)
        XCTAssertEqual(lastLine(revertAgain.stdout), "scanned 32, converted 0, current 32, failed 0")

        let forward = try migrate(["--from", "v1"], namespace: ns)
        XCTAssertEqual(forward.status, 0, forward.stderr)
        XCTAssertEqual(lastLine(forward.stdout), "scanned 32, converted 30, current 2, failed 0")
        let roundTrip = try V1Documents.dump(project: Self.project, collection: collection)
        XCTAssertEqual(roundTrip as NSDictionary, migrated as NSDictionary, "--revert then --from v1 is the identity")
    }

    // MARK: - Malformed documents

    func testMalformedDocumentsAreNamedAndNeverBreakACall() throws {
        try FirestoreEmulator.shared.ensureRunning()
        let ns = newNamespace()
        try V1Documents.write(project: Self.project, namespace: ns, count: 6, agents: 0, dimension: 8, malformed: true)
        let daemon = try firestoreDaemon(namespace: ns)
        defer { daemon.stop() }
        let client = try daemon.client()
        defer { client.close() }

        let error = assertThrows(.storage) { try client.getMemoryItem("mem_v1_bad_embedding") }
        XCTAssertTrue(error?.message.contains("mem_v1_bad_embedding") == true, "\(String(describing: error))")
        XCTAssertTrue(error?.message.contains("embedding[0] is a string") == true, "\(String(describing: error))")
        let badUser = assertThrows(.storage) { try client.getMemoryItem("mem_v1_bad_user") }
        XCTAssertTrue(badUser?.message.contains("user_id is an integer") == true, "\(String(describing: badUser))")

        // Listings and history leave them out (and say so in the log); the good documents are all there.
        let all = try client.listMemoryItems(ListMemoryItemsRequest(limit: 100))
        XCTAssertEqual(all.items.map(\.id).sorted(), (0..<6).map { String(format: "mem_v1_%06d", $0) })
        let history = try client.conversationHistory(HistoryRequest(userID: "user0", limit: 100, itemType: "message"))
        XCTAssertEqual(history.items.map(\.id), ["mem_v1_000003", "mem_v1_000000"])
        let log = daemon.log()
        XCTAssertTrue(log.contains("skipped a malformed document \(ns)_memory_items/mem_v1_bad_embedding"), log)
        XCTAssertTrue(log.contains("mem_v1_bad_user"), log)

        let run = try migrate(["--from", "v1"], namespace: ns)
        XCTAssertEqual(run.status, 1, "failures make the exit status non-zero")
        XCTAssertEqual(lastLine(run.stdout), "scanned 8, converted 6, current 0, failed 2")
        XCTAssertTrue(run.stderr.contains("mem_v1_bad_embedding: embedding[0] is a string"), run.stderr)
        XCTAssertTrue(run.stderr.contains("mem_v1_bad_user: user_id is an integer"), run.stderr)
        // Search works over the converted ones.
        let good = try client.getMemoryItem("mem_v1_000000")
        let hits = try client.semanticSearch(SearchRequest(userID: "user0", queryEmbedding: good.embedding, topK: 2))
        XCTAssertEqual(hits.first?.item.id, "mem_v1_000000")
    }

    // MARK: - Interrupted and rerun

    func testMigrationKilledMidRunFinishesOnRerunWithNothingLostOrDoubled() throws {
        try FirestoreEmulator.shared.ensureRunning()
        let ns = newNamespace()
        let collection = "\(ns)_memory_items"
        let count = 3000
        try V1Documents.write(project: Self.project, namespace: ns, count: count, agents: 2, dimension: 32, seed: 3)
        let original = try V1Documents.dump(project: Self.project, collection: collection)
        XCTAssertEqual(original.count, count)

        // Killed (SIGKILL) right after its second page of 100 was written, as the debug log says.
        let dir = TestPaths.makeTempDirectory("mg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = FileManager.default.createFile(atPath: dir + "/empty.toml", contents: Data())
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestPaths.binary("memoryd"))
        p.arguments = ["migrate", "--from", "v1", "--config", dir + "/empty.toml", "--log-level", "debug"]
        var env = migrateEnvironment(namespace: ns, dimension: 32)
        env["MEMORYD_FIRESTORE_BATCH_SIZE"] = "100"
        p.environment = env
        let errors = Pipe()
        p.standardError = errors
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        var seen = ""
        while seen.components(separatedBy: "page done").count - 1 < 2 {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "killed mid-run:\n\(seen.suffix(2000))")

        let interrupted = try V1Documents.dump(project: Self.project, collection: collection)
        let vectors = interrupted.values.filter { embedding($0)?.isVector == true }.count
        XCTAssertGreaterThanOrEqual(vectors, 200, "two pages were written before the kill")
        XCTAssertLessThan(vectors, count, "the kill came before the end")

        let rerun = try migrate(["--from", "v1"], namespace: ns, dimension: 32)
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        // The rerun converts exactly what was left (a write the kill caught in flight may have landed since).
        let figures = lastLine(rerun.stdout).split(separator: ",").map { Int($0.split(separator: " ").last!)! }
        XCTAssertEqual(figures.count, 4, rerun.stdout)
        XCTAssertEqual(figures[0], count + 2, rerun.stdout)
        XCTAssertEqual(figures[1] + figures[2], count + 2, rerun.stdout)
        XCTAssertLessThanOrEqual(figures[1], count - vectors, rerun.stdout)
        XCTAssertGreaterThanOrEqual(figures[1], count - vectors - 100, rerun.stdout)
        XCTAssertEqual(figures[3], 0, rerun.stdout)

        let final = try V1Documents.dump(project: Self.project, collection: collection)
        XCTAssertEqual(Set(final.keys), Set(original.keys), "nothing lost, nothing added")
        for (id, doc) in original {
            let e = try XCTUnwrap(embedding(final[id]), id)
            XCTAssertTrue(e.isVector, id)
            XCTAssertEqual(e.values, embedding(doc)?.values, id)
            XCTAssertEqual(withoutConvertedFields(final[id]), withoutConvertedFields(doc), id)
        }
        XCTAssertEqual(
            lastLine(try migrate(["--from", "v1"], namespace: ns, dimension: 32).stdout),
            "scanned \(count + 2), converted 0, current \(count + 2), failed 0")
    }

    // MARK: - sqlite ⇄ Firestore

    func testCopyTenThousandItemsFromSQLiteToFirestoreAndBack() throws {
        try FirestoreEmulator.shared.ensureRunning()
        let ns = newNamespace()
        let dimension = 16
        let source = try startDaemon(["MEMORYD_NAMESPACE": ns], dimension: dimension, backend: "sqlite")
        defer { source.removeDirectory() }
        var rng = SeededRandom(42)
        let base = Timestamp.now().microseconds - 86_400_000_000
        let farFuture = Timestamp(microseconds: Timestamp.now().microseconds + 30 * 86_400_000_000)
        let count = 10_000
        var items: [MemoryItem] = []
        for i in 0..<count {
            items.append(
                MemoryItem(
                    id: String(format: "mem_copy_%05d", i), userID: "user\(i % 10)",
                    sessionID: i % 3 == 0 ? "" : "s\(i % 7)",
                    timestamp: Timestamp(microseconds: base + Int64(i) * 1000 + Int64(i % 3)),
                    itemType: i % 4 == 0 ? "message" : "conversation", personaActive: i % 5 == 0 ? "helper" : "",
                    textContent: "copied memory \(i)", embedding: randomEmbedding(dimension, &rng),
                    metadata: [
                        "i": .number(Double(i)), "tag": .string("t\(i % 9)"), "nested": .object(["x": .bool(true)]),
                    ],
                    expiration: i % 10 == 0 ? Timestamp(microseconds: farFuture.microseconds + Int64(i)) : nil))
        }
        let client = try source.client()
        for chunk in stride(from: 0, to: count, by: 1000) {
            let results = try client.addMemoryItems(Array(items[chunk..<min(count, chunk + 1000)]))
            XCTAssertEqual(results.compactMap(\.error).count, 0)
        }
        for i in 0..<20 {
            _ = try client.addRawAgentData(
                AgentData(
                    id: "agent_copy_\(i)", agentID: "agent\(i % 3)",
                    timestamp: Timestamp(microseconds: base + Int64(i)),
                    dataType: "note",
                    content: .object(["n": .number(Double(i)), "list": .array([.string("a"), .null])]),
                    metadata: ["k": .string("v\(i)")], expiration: i == 3 ? farFuture : nil))
        }
        let sourceItems = try listAll(client)
        let sourceData = try listAllAgentData(client)
        client.close()
        XCTAssertEqual(sourceItems.count, count)
        XCTAssertEqual(source.stop(), 0)

        // sqlite → Firestore.
        let up = try migrate(
            ["--from", "sqlite", "--to", "firestore", "--data-dir", source.dataDir], namespace: ns, dimension: dimension
        )
        XCTAssertEqual(up.status, 0, up.stderr)
        XCTAssertEqual(lastLine(up.stdout), "scanned 10020, converted 10020, current 0, failed 0")
        XCTAssertTrue(up.stdout.contains("verified: the firestore namespace \(ns) holds all 10020 records"), up.stdout)

        let cloud = try firestoreDaemon(namespace: ns, dimension: dimension)
        let cloudClient = try cloud.client()
        XCTAssertEqual(try listAll(cloudClient), sourceItems, "ids, timestamps, expirations, embeddings, metadata")
        XCTAssertEqual(try listAllAgentData(cloudClient), sourceData)
        cloudClient.close()
        cloud.stop()

        // Firestore → a fresh sqlite directory, the way back.
        let back = DaemonProcess(
            environment: ["MEMORYD_NAMESPACE": ns, "MEMORYD_EMBEDDING_DIMENSION": String(dimension)])
        defer { back.removeDirectory() }
        let down = try migrate(
            ["--from", "firestore", "--to", "sqlite", "--data-dir", back.dataDir], namespace: ns, dimension: dimension)
        XCTAssertEqual(down.status, 0, down.stderr)
        XCTAssertEqual(lastLine(down.stdout), "scanned 10020, converted 10020, current 0, failed 0")
        try back.start()
        let backClient = try back.client()
        XCTAssertEqual(try listAll(backClient), sourceItems)
        XCTAssertEqual(try listAllAgentData(backClient), sourceData)
        backClient.close()
        back.stop()

        // Reruns copy nothing.
        let rerunUp = try migrate(
            ["--from", "sqlite", "--to", "firestore", "--data-dir", source.dataDir], namespace: ns, dimension: dimension
        )
        XCTAssertEqual(lastLine(rerunUp.stdout), "scanned 10020, converted 0, current 10020, failed 0", rerunUp.stderr)
        let rerunDown = try migrate(
            ["--from", "firestore", "--to", "sqlite", "--data-dir", back.dataDir], namespace: ns, dimension: dimension)
        XCTAssertEqual(
            lastLine(rerunDown.stdout), "scanned 10020, converted 0, current 10020, failed 0", rerunDown.stderr)
    }

    func testMigrateUsageErrors() throws {
        for (args, message) in [
            (["--from", "v2"], "neither a format memoryd converts (v1) nor a backend"),
            (["--from", "sqlite"], "say where to with --to"),
            (["--from", "sqlite", "--to", "sqlite"], "the same backend"),
            (["--from", "v1", "--revert", "--to", "sqlite"], "--from v1 with --to"),
            (["--from", "sqlite", "--to", "firestore", "--revert"], "--revert goes with --from v1"),
            (["--from", "v1", "--bogus"], "Unknown option '--bogus'"),
        ] {
            let r = try runToEnd(TestPaths.binary("memoryd"), ["migrate"] + args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        // A store that cannot be reached stops the run: exit status 1, one line saying why.
        let unreachable = try runToEnd(
            TestPaths.binary("memoryd"),
            [
                "migrate", "--from", "v1", "--config", "/dev/null", "--project-id", "p", "--emulator-host",
                "127.0.0.1:\(freeTCPPort())",
            ],
            environment: ["PATH": "/usr/bin:/bin", "MEMORYD_FIRESTORE_MAX_RETRIES": "0"], inherit: false)
        XCTAssertEqual(unreachable.status, 1, unreachable.stderr)
        XCTAssertTrue(unreachable.stderr.contains("memoryd migrate: Firestore unreachable"), unreachable.stderr)
        // The daemon is still the default command, its help unchanged but for the pointer to migrate.
        let help = try runToEnd(TestPaths.binary("memoryd"), ["--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("--socket <socket>"), help.stdout)
        let words = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(words.contains("(see memoryd migrate --help)"), help.stdout)
        XCTAssertEqual(try runToEnd(TestPaths.binary("memoryd"), ["--version"]).stdout, "0.1.0\n")
    }

    // MARK: - Helpers

    func listAll(_ client: MemoryClient) throws -> [MemoryItem] {
        var out: [MemoryItem] = []
        var request = ListMemoryItemsRequest(limit: 1000)
        repeat {
            let page = try client.listMemoryItems(request)
            out += page.items
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        return out
    }

    func listAllAgentData(_ client: MemoryClient) throws -> [AgentData] {
        var out: [AgentData] = []
        var request = ListAgentDataRequest(agentID: "", limit: 1000, allAgents: true)
        repeat {
            let page = try client.listAgentData(request)
            out += page.items
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        return out
    }
}
