import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryWire
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Signals, restarts and durability with a real process.
final class LifecycleTests: XCTestCase {
    func testSIGTERMWithCallsInFlightAnswersOrGoAwaysEveryCall() throws {
        let daemon = try startDaemon(["MEMORYD_WORKERS": "2"])
        defer { daemon.removeDirectory() }
        let conn = try daemon.connection()
        var sent: [UInt64] = []
        for i in 0..<300 {
            sent.append(
                try conn.start(
                    .addMemoryItems(items: (0..<20).map { MemoryItem(id: "t\(i)-\($0)", userID: "u") }, upsert: false)))
            if i == 150 { daemon.signal(SIGTERM) }
        }
        var answered: [UInt64: ResponseFrame] = [:]
        var goAway: GoAwayFrame?
        while true {
            guard let frame = try? conn.readFrame(timeoutMs: 30_000) else { break }  // closed by the daemon
            switch frame {
            case .response(let r): answered[r.id] = r
            case .goAway(let g): goAway = g
            default: break
            }
        }
        let g = try XCTUnwrap(goAway, "the daemon sent a GoAway before closing")
        XCTAssertEqual(g.code, .unavailable)
        for id in sent {
            if id <= g.lastRequestID {
                XCTAssertNotNil(answered[id], "call \(id) ≤ last_request_id \(g.lastRequestID) was answered")
            } else {
                XCTAssertNil(answered[id], "call \(id) > last_request_id was not processed")
            }
        }
        XCTAssertEqual(daemon.stop(), 0, "drained and exited 0\n\(daemon.log(tail: 3000))")

        // What was acknowledged is there after a restart; what was not processed is not.
        try daemon.start()
        let client = try daemon.client()
        for (i, id) in sent.enumerated() {
            if let r = answered[id], r.error == nil {
                XCTAssertEqual(try client.getMemoryItem("t\(i)-19").id, "t\(i)-19")
            } else if id > g.lastRequestID {
                assertThrows(.notFound) { try client.getMemoryItem("t\(i)-0") }
            }
        }
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testDataSurvivesRestartAndKill9() throws {
        let daemon = try startDaemon()
        defer { daemon.removeDirectory() }
        var client = try daemon.client()
        let id = try client.addMemoryItem(
            MemoryItem(userID: "u", textContent: "remember me", embedding: [1, 0, 0, 0, 0, 0, 0, 0]))
        _ = try client.addRawAgentData(
            AgentData(id: "agent_keep", agentID: "a", dataType: "t", content: .string("kept")))
        XCTAssertEqual(daemon.stop(), 0)
        try daemon.start()
        client = try daemon.client()
        XCTAssertEqual(try client.getMemoryItem(id).textContent, "remember me")
        XCTAssertEqual(try client.getAgentData("agent_keep").content, .string("kept"))
        XCTAssertEqual(
            try client.semanticSearch(SearchRequest(userID: "u", queryEmbedding: [1, 0, 0, 0, 0, 0, 0, 0])).first?.item
                .id, id)

        // kill -9: every acknowledged write is still there.
        var acked: [String] = []
        for i in 0..<50 {
            acked.append(try client.addMemoryItem(MemoryItem(id: "k\(i)", userID: "u", textContent: "k \(i)")))
        }
        daemon.kill9()
        try daemon.start()  // replaces the stale socket file left by the killed process
        client = try daemon.client()
        for a in acked { XCTAssertEqual(try client.getMemoryItem(a).id, a) }
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testSecondDaemonOnTheSameSocketIsRefused() throws {
        let first = try startDaemon()
        defer { first.removeDirectory() }
        let second = DaemonProcess(
            environment: ["MEMORYD_EMBEDDING_DIMENSION": "8"], directory: first.directory + "/second")
        try? FileManager.default.createDirectory(atPath: second.directory, withIntermediateDirectories: true)
        second.arguments = ["--socket", first.socketPath]
        XCTAssertThrowsError(try second.start(timeout: 20)) { error in
            XCTAssertTrue("\(error)".contains("in use"), "\(error)")
        }
        XCTAssertNoThrow(try first.client().ping(), "the first daemon keeps serving")
        XCTAssertEqual(first.stop(), 0)
    }

    func testBadConfigurationIsRefusedNamingTheKey() throws {
        let d = DaemonProcess(environment: ["MEMORYD_EMBEDDING_DIMENSION": "4096"])
        defer { d.removeDirectory() }
        XCTAssertThrowsError(try d.start(timeout: 20)) { error in
            XCTAssertTrue("\(error)".contains("embedding_dimension"), "\(error)")
        }
        let d2 = DaemonProcess()
        defer { d2.removeDirectory() }
        d2.writeConfig("socket_mode = \"0660\"\nbogus_key = 1\n")
        XCTAssertThrowsError(try d2.start(timeout: 20)) { error in
            XCTAssertTrue("\(error)".contains("bogus_key"), "\(error)")
        }
    }

    /// A typo in a unit file's Environment= (MEMORYD_WORKER for MEMORYD_WORKERS) stops memoryd at start,
    /// exit 2, naming the variable, instead of falling back to the default without a word.
    func testUnknownMemorydVariableIsRefusedNamingIt() throws {
        let d = DaemonProcess(environment: ["MEMORYD_WORKER": "4"])
        defer { d.removeDirectory() }
        XCTAssertThrowsError(try d.start(timeout: 60)) { error in
            XCTAssertTrue("\(error)".contains("exited with status 2"), "\(error)")
        }
        XCTAssertTrue(d.log().contains("MEMORYD_WORKER: unknown environment variable"), d.log())
    }

    func testSIGHUPReloadsLogLevel() throws {
        let daemon = try startDaemon()
        defer { daemon.removeDirectory() }
        daemon.writeConfig("log_level = \"debug\"\nembedding_dimension = 8\n")
        daemon.signal(SIGHUP)
        let deadline = Date().addingTimeInterval(10)
        while !daemon.log().contains("configuration reloaded") && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(
            daemon.log().contains("configuration reloaded applied=\"log_level: info -> debug\""), daemon.log())
        _ = try daemon.client().ping()
        // Debug lines now appear (a connection is logged at debug).
        let until = Date().addingTimeInterval(10)
        while !daemon.log().contains("connection accepted") && Date() < until { usleep(20_000) }
        XCTAssertTrue(daemon.log().contains("connection accepted"))
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// systemd reads its notify socket, but a NOTIFY_SOCKET nobody reads fills up after 10 datagrams (the
    /// kernel's max_dgram_qlen); memoryd's loop must not block on it (it did: a test daemon froze after ten
    /// STATUS= changes).
    func testANotifySocketNobodyReadsDoesNotStopTheLoop() throws {
        let daemon = try startDaemon()
        defer { daemon.removeDirectory() }
        XCTAssertLessThan(daemon.fillNotifySocket(), 100_000, "the notify socket's queue is full")
        // A reload sends STATUS= from the loop thread.
        daemon.signal(SIGHUP)
        var waits = 0
        while !daemon.log().contains("configuration reloaded"), waits < 1000 {
            usleep(20_000)
            waits += 1
        }
        let conn = try daemon.connection()
        XCTAssertNil(try conn.waitResponse(try conn.start(.ping), timeoutMs: 30_000).error, "the loop still answers")
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testExactTopKMatchesBruteForceAt768Dimensions() throws {
        let daemon = try startDaemon(dimension: 768)
        defer { daemon.removeDirectory() }
        let client = try daemon.client()
        var rng = SeededRandom(42)
        var all: [MemoryItem] = []
        for batch in 0..<4 {
            let items = (0..<250).map { i in
                MemoryItem(
                    id: "v\(batch)-\(i)", userID: "u", personaActive: i % 3 == 0 ? "p" : "q",
                    embedding: randomEmbedding(768, &rng))
            }
            XCTAssertTrue(try client.addMemoryItems(items).allSatisfy { $0.error == nil })
            all += items
        }
        for measure in DistanceMeasure.allCases {
            for persona in ["", "p"] {
                let q = randomEmbedding(768, &rng)
                let got = try client.semanticSearch(
                    SearchRequest(userID: "u", queryEmbedding: q, persona: persona, topK: 10, measure: measure))
                let expected = all.filter { persona.isEmpty || $0.personaActive == persona }
                    .map { ($0.id, Scoring.score(q, $0.embedding, measure: measure)) }
                    .sorted { $0.1 > $1.1 }.prefix(10)
                XCTAssertEqual(got.map(\.item.id), expected.map(\.0), "\(measure) persona=\(persona)")
                for (g, e) in zip(got, expected) { XCTAssertEqual(g.score, e.1, accuracy: 1e-6) }
            }
        }
        XCTAssertEqual(daemon.stop(), 0)
    }
}
