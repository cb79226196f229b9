import Foundation
import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryWire
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The metrics: what GET /metrics and GetMetrics report after known calls, that the text is valid for
/// promtool and prometheus_client, that bad HTTP clients cannot harm the daemon, and that nothing listens
/// unless configured.
final class MetricsTests: XCTestCase {
    var daemon: DaemonProcess!

    override func tearDown() {
        if let daemon {
            XCTAssertEqual(daemon.stop(), 0, "memoryd should exit 0 on SIGTERM\n\(daemon.log(tail: 2000))")
            daemon.removeDirectory()
        }
        daemon = nil
    }

    private func startWithEndpoint(
        _ env: [String: String] = [:], backend: String = "sqlite", tcp: Bool = false
    ) throws -> String {
        let dir = TestPaths.makeTempDirectory("mx")
        let listen = tcp ? "127.0.0.1:0" : "unix:\(dir)/metrics.sock"
        daemon = try startDaemon(env, arguments: ["--metrics-listen", listen], backend: backend)
        guard tcp else { return listen }
        // Port 0: the daemon logs the port it bound.
        let log = daemon.log()
        guard let r = log.range(of: "metrics.listen=127.0.0.1:") else {
            throw DaemonError("no address logged:\n\(log)")
        }
        return "127.0.0.1:" + log[r.upperBound...].prefix { $0.isNumber }
    }

    // MARK: - Counting

    func testScrapesCountTheCallsMade() throws {
        for backend in Backends.selected {
            try checkCounts(backend: backend)
            tearDown()
        }
    }

    private func checkCounts(backend: String) throws {
        let address = try startWithEndpoint(backend: backend)
        let client = try daemon.client()
        for _ in 0..<3 { _ = try client.ping() }
        let prefix = "m" + IDGenerator.uuid().prefix(6)
        for i in 0..<2 {
            _ = try client.addMemoryItem(MemoryItem(id: "\(prefix)\(i)", userID: "u", textContent: "t\(i)"))
        }
        assertThrows(.duplicate) {
            try client.addMemoryItem(MemoryItem(id: "\(prefix)0", userID: "u", textContent: "x"))
        }
        assertThrows(.validation) {
            try client.addMemoryItem(MemoryItem(id: "\(prefix)9", userID: "", textContent: "x"))
        }
        _ = try client.getMemoryItem("\(prefix)0")
        assertThrows(.notFound) { try client.getMemoryItem("\(prefix)-nope") }
        _ = try client.healthCheck()
        // An unknown method, and a protocol violation on a connection of its own.
        let raw = try daemon.connection()
        try raw.send(.request(RequestFrame(id: 7, method: MemoryMethod.servicePrefix + "NoSuchMethod")))
        guard case .response(let r) = try raw.readFrame(timeoutMs: 10_000) else { return XCTFail("no response") }
        XCTAssertEqual(r.error?.code, .unimplemented)
        let violator = try daemon.connection()
        try violator.writeRaw([0, 0, 0, 0])
        _ = try violator.readUntilClosed(timeoutMs: 10_000)

        let http = try MetricsTools.get(address)
        XCTAssertEqual(http.status, 200, http.body)
        XCTAssertEqual(http.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        let s = MetricSamples(http.body)
        let expected: [(String, String, Double)] = [
            ("Ping", "OK", 3), ("AddMemoryItem", "OK", 2), ("AddMemoryItem", "ALREADY_EXISTS", 1),
            ("AddMemoryItem", "INVALID_ARGUMENT", 1), ("GetMemoryItem", "OK", 1), ("GetMemoryItem", "NOT_FOUND", 1),
            ("HealthCheck", "OK", 1), ("unknown", "UNIMPLEMENTED", 1), ("GetMetrics", "OK", 0),
        ]
        for (method, code, n) in expected {
            XCTAssertEqual(s["memoryd_calls_total{method=\"\(method)\",code=\"\(code)\"}"], n, "\(method) \(code)")
        }
        XCTAssertEqual(s.sum("memoryd_calls_total"), 11, "no other call was counted")
        XCTAssertEqual(s["memoryd_call_duration_seconds_count{method=\"Ping\"}"], 3)
        XCTAssertEqual(s["memoryd_call_duration_seconds_count{method=\"AddMemoryItem\"}"], 4)
        XCTAssertEqual(s["memoryd_call_duration_seconds_bucket{method=\"AddMemoryItem\",le=\"+Inf\"}"], 4)
        XCTAssertGreaterThan(s["memoryd_call_duration_seconds_sum{method=\"AddMemoryItem\"}"] ?? 0, 0)
        XCTAssertEqual(s["memoryd_protocol_violations_total{kind=\"zero_length_frame\"}"], 1)
        XCTAssertEqual(s.sum("memoryd_protocol_violations_total"), 1)
        XCTAssertEqual(s["memoryd_peer_refusals_total"], 0)
        XCTAssertEqual(s.sum("memoryd_build_info", "version=\"", "backend=\"\(backend)\""), 1)
        XCTAssertGreaterThanOrEqual(s["memoryd_connections"] ?? 0, 2, "the client and the raw connection")
        XCTAssertEqual(s["memoryd_calls_in_flight"], 0)
        XCTAssertEqual(s["memoryd_queue_depth"], 0)
        XCTAssertEqual(s["memoryd_circuit_state"], 0)
        XCTAssertGreaterThan(s["process_resident_memory_bytes"] ?? 0, 1_000_000)
        XCTAssertGreaterThan(s["process_open_fds"] ?? 0, 3)
        XCTAssertGreaterThan(s["process_start_time_seconds"] ?? 0, 1_600_000_000)
        if backend == "sqlite" {
            let b = "backend=\"sqlite\""
            XCTAssertEqual(s["memoryd_backend_request_duration_seconds_count{\(b),operation=\"insert_item\"}"], 2)
            // Two gets that reach the store (the get after the refused duplicate misses the cache: a failed write
            // drops its id), and the duplicate add's read of the stored row (an identical re-add is a retry).
            XCTAssertEqual(s["memoryd_backend_request_duration_seconds_count{\(b),operation=\"get_item\"}"], 3)
            XCTAssertEqual(s["memoryd_backend_request_duration_seconds_count{\(b),operation=\"commit\"}"], 2)
            XCTAssertEqual(s.sum("memoryd_backend_errors_total"), 0, "a duplicate id is not a failed request")
            XCTAssertEqual(s["memoryd_backend_retries_total{\(b)}"], 0)
            XCTAssertEqual(s["memoryd_index_entries{\(b)}"], 0, "no embeddings stored")
        } else {
            // Firestore's requests are its gRPC calls: adds commit, gets read with BatchGetDocuments.
            let b = "backend=\"firestore\""
            XCTAssertGreaterThanOrEqual(
                s["memoryd_backend_request_duration_seconds_count{\(b),operation=\"firestore.commit\"}"] ?? 0, 2)
            XCTAssertGreaterThanOrEqual(
                s["memoryd_backend_request_duration_seconds_count{\(b),operation=\"firestore.batchGetDocuments\"}"]
                    ?? 0, 1)
            XCTAssertEqual(s.sum("memoryd_backend_errors_total"), 0, "NOT_FOUND and ALREADY_EXISTS are answers")
            XCTAssertEqual(s["memoryd_backend_retries_total{\(b)}"], 0)
        }

        XCTAssertNil(try MetricsTools.promtoolProblems(http.body))
        let parsed = try MetricsTools.parseWithPrometheusClient(http.body)
        XCTAssertEqual(parsed.count, s.values.count, "prometheus_client reads every sample")
        XCTAssertEqual(parsed["memoryd_calls_total{code=\"OK\",method=\"Ping\"}"], 3)
        XCTAssertEqual(parsed["memoryd_calls_total{code=\"NOT_FOUND\",method=\"GetMemoryItem\"}"], 1)

        // The same text over the memory socket: GetMetrics, then memoryctl metrics (which sees that call).
        let viaSocket = MetricSamples(try client.getMetrics())
        XCTAssertEqual(viaSocket.sum("memoryd_calls_total"), 11)
        let (status, out) = try MetricsTools.run(
            TestPaths.binary("memoryctl"), ["--socket", daemon.socketPath, "metrics"])
        XCTAssertEqual(status, 0, out)
        let viaCtl = MetricSamples(out)
        XCTAssertEqual(viaCtl["memoryd_calls_total{method=\"GetMetrics\",code=\"OK\"}"], 1)
        XCTAssertEqual(viaCtl.sum("memoryd_calls_total"), 12)
        XCTAssertNil(try MetricsTools.promtoolProblems(out + "\n"))
        client.close()
    }

    func testDeadlinesAndBackendErrorsAreCounted() throws {
        let python3 = try MetricsTools.require("python3", "holds the sqlite write lock")
        let address = try startWithEndpoint(["MEMORYD_WORKERS": "1"])
        let client = try daemon.client(timeoutMs: 300)
        _ = try client.addMemoryItem(MemoryItem(id: "first", userID: "u", textContent: "t"))
        // Another process holds the database's write lock for a while.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: python3)
        holder.arguments = [
            "-c",
            """
            import sqlite3, sys, time
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
            c.execute("BEGIN EXCLUSIVE"); print("locked", flush=True); time.sleep(7); c.execute("ROLLBACK")
            """,
            daemon.dataDir + "/default.sqlite3",
        ]
        let out = Pipe()
        holder.standardOutput = out
        try holder.run()
        defer { holder.waitUntilExit() }
        _ = out.fileHandleForReading.availableData  // "locked"
        assertThrows(.unspecified, code: .deadlineExceeded) {
            try client.addMemoryItem(MemoryItem(id: "late", userID: "u", textContent: "t"))
        }
        // The worker's statement fails once sqlite gives up waiting for the lock: a backend error.
        var s = MetricSamples(try MetricsTools.get(address).body)
        let deadline = Date().addingTimeInterval(60)
        while s.sum("memoryd_backend_errors_total") == 0 && Date() < deadline {
            usleep(200_000)
            s = MetricSamples(try MetricsTools.get(address).body)
        }
        XCTAssertEqual(s["memoryd_calls_total{method=\"AddMemoryItem\",code=\"DEADLINE_EXCEEDED\"}"], 1)
        XCTAssertEqual(s["memoryd_calls_total{method=\"AddMemoryItem\",code=\"OK\"}"], 1)
        XCTAssertEqual(s.sum("memoryd_backend_errors_total"), 1, "one failed statement")
        XCTAssertNil(try MetricsTools.promtoolProblems(MetricsTools.get(address).body))
    }

    func testPeerRefusalsAreCounted() throws {
        let address = try startWithEndpoint(["MEMORYD_ALLOWED_UIDS": String(getuid() &+ 4242)])
        let c = try daemon.connection()
        guard case .goAway(let g) = try c.readFrame(timeoutMs: 10_000) else { return XCTFail("expected GoAway") }
        XCTAssertEqual(g.code, .permissionDenied)
        XCTAssertEqual(MetricSamples(try MetricsTools.get(address).body)["memoryd_peer_refusals_total"], 1)
    }

    // MARK: - The endpoint

    func testTCPEndpointOnLoopback() throws {
        let address = try startWithEndpoint(tcp: true)
        _ = try daemon.client().ping()
        let r = try MetricsTools.get(address)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(MetricSamples(r.body)["memoryd_calls_total{method=\"Ping\",code=\"OK\"}"], 1)
    }

    func testNonLoopbackAddressesAreRefusedAtStart() throws {
        for bad in ["0.0.0.0:9464", "192.168.1.10:9464", "[::]:9464", "example.com:9464", "127.0.0.1", "unix:rel.sock"]
        {
            let (status, out) = try MetricsTools.run(
                TestPaths.binary("memoryd"), ["--metrics-listen", bad, "--check-config"])
            XCTAssertEqual(status, 2, "\(bad): \(out)")
            XCTAssertTrue(out.contains("metrics_listen"), out)
        }
        for good in ["127.0.0.1:9464", "localhost:0", "[::1]:9464", "127.1.2.3:80", "unix:/run/memoryd/metrics.sock"] {
            let (status, out) = try MetricsTools.run(
                TestPaths.binary("memoryd"), ["--metrics-listen", good, "--check-config"])
            XCTAssertEqual(status, 0, "\(good): \(out)")
        }
    }

    func testBadOversizedAndSilentClientsDoNotHarmTheDaemon() throws {
        let address = try startWithEndpoint()
        let client = try daemon.client()

        // Silent and trickling clients, more than the endpoint's connection limit, all at once.
        let group = DispatchGroup()
        let closed = Atomic(0)
        for i in 0..<20 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                guard let fd = try? MetricsTools.connect(address) else { return }
                defer { close(fd) }
                if i % 2 == 1 {  // trickle a header byte a second: each byte restarts MHD's own idle timer
                    let start = Date()
                    for b in Array("GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa".utf8) {
                        if Date().timeIntervalSince(start) > 40 { break }
                        var byte = b
                        if send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) <= 0 { break }
                        usleep(1_000_000)
                    }
                }
                if (try? MetricsTools.readUntilClosed(fd, timeout: 60)) != nil { closed.add() }
            }
        }
        // Meanwhile the memory socket answers.
        for _ in 0..<5 {
            XCTAssertNoThrow(try client.ping())
            usleep(200_000)
        }
        group.wait()
        XCTAssertEqual(closed.value, 20, "every silent or slow client was closed by the server")

        // A request line that is not HTTP, and headers past the cap.
        let bad = try MetricsTools.parse(MetricsTools.exchange(address, Array("NOT HTTP AT ALL\r\n\r\n".utf8)))
        XCTAssertEqual(bad.status, 400)
        let big = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 64 * 1024))\r\n\r\n"
        let reply = (try? MetricsTools.exchange(address, Array(big.utf8))) ?? []
        if !reply.isEmpty {
            let r = try MetricsTools.parse(reply)
            XCTAssertTrue((400..<500).contains(r.status), "oversized request answered \(r.status)")
        }
        // Paths and methods.
        XCTAssertEqual(try MetricsTools.get(address, "/").status, 404)
        XCTAssertEqual(try MetricsTools.get(address, "/metrics/x").status, 404)
        let post = try MetricsTools.get(address, method: "POST")
        XCTAssertEqual(post.status, 405)
        XCTAssertEqual(post.headers["allow"], "GET, HEAD")
        XCTAssertEqual(try MetricsTools.get(address, method: "DELETE").status, 405)
        let head = try MetricsTools.get(address, method: "HEAD")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.body, "")

        // Still serving, on both sockets.
        XCTAssertEqual(try MetricsTools.get(address).status, 200)
        XCTAssertNoThrow(try client.ping())
        XCTAssertTrue(daemon.isRunning)
    }

    // MARK: - Off

    func testNoEndpointUnlessConfigured() throws {
        daemon = try startDaemon()
        XCTAssertFalse(daemon.log().contains("metrics endpoint"), daemon.log())
        let listening = try String(contentsOfFile: "/proc/\(daemon.pid)/net/unix", encoding: .utf8)
        XCTAssertFalse(listening.contains("metrics"))
        // No TCP socket of the daemon's own: its descriptors are the memory socket, clients and files.
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/fd")
        let tcpInodes = Set(
            try String(contentsOfFile: "/proc/\(daemon.pid)/net/tcp", encoding: .utf8).split(separator: "\n")
                .dropFirst().compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst(9).first }
                .map(String.init))
        for fd in fds {
            let target =
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(daemon.pid)/fd/\(fd)")) ?? ""
            if target.hasPrefix("socket:[") {
                XCTAssertFalse(tcpInodes.contains(String(target.dropFirst(8).dropLast())), "fd \(fd) is a TCP socket")
            }
        }
        // GetMetrics works without the endpoint.
        let text = try daemon.client().getMetrics()
        XCTAssertTrue(text.contains("memoryd_calls_total"))
    }

    func testMetricsOff() throws {
        daemon = try startDaemon(["MEMORYD_METRICS": "false"])
        assertThrows(.unspecified, code: .unavailable) { try daemon.client().getMetrics() }
        let (status, out) = try MetricsTools.run(
            TestPaths.binary("memoryd"), ["--metrics-listen", "127.0.0.1:9464", "--check-config"])
        XCTAssertEqual(status, 0, out)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestPaths.binary("memoryd"))
        p.arguments = ["--metrics-listen", "127.0.0.1:9464", "--check-config"]
        p.environment = ["MEMORYD_METRICS": "false"]
        let pipe = Pipe()
        p.standardError = pipe
        p.standardOutput = pipe
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 2)
    }
}

/// A counter the test's threads share.
final class Atomic: @unchecked Sendable {
    private var v: Int
    private let lock = NSLock()
    init(_ v: Int) { self.v = v }
    func add() { lock.withLock { v += 1 } }
    var value: Int { lock.withLock { v } }
}
