import Foundation
import MemoryClient
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import XCTest

/// memoryd on the Firestore backend with a fault-injecting proxy between it and the emulator: latency,
/// connection resets, a hang with no bytes, HTTP 503 and 429. Failed calls end in ConnectionError (or
/// OperationError for 429 after retries) within their deadline, retries show in health
/// (`details.retries_total`), the breaker opens (health unhealthy, `circuit_state` open) and recovers,
/// and every call answered OK is in the emulator afterwards, read back through a fresh daemon that talks
/// to the emulator directly.
final class FirestoreFaultTests: XCTestCase {
    func testFaultsGiveTimelyErrorsRetriesBreakerAndNoLostAcknowledgedWrites() throws {
        try FirestoreEmulator.shared.ensureRunning()
        let proxy = try FaultProxy(upstreamPort: FirestoreEmulator.shared.port)
        defer { proxy.stop() }
        XCTAssertEqual(httpStatus(port: proxy.port, path: "/"), 200, "the proxy forwards to the emulator")
        let namespace = "fault" + IDGenerator.uuid().prefix(8)
        let daemon = try startDaemon(
            [
                "MEMORYD_FIRESTORE_EMULATOR_HOST": proxy.hostPort, "MEMORYD_NAMESPACE": namespace,
                "MEMORYD_FIRESTORE_REQUEST_TIMEOUT_MS": "1500", "MEMORYD_FIRESTORE_MAX_RETRIES": "2",
                "MEMORYD_CIRCUIT_BREAKER_FAILURE_THRESHOLD": "4", "MEMORYD_CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S": "1",
                "MEMORYD_WORKERS": "2",
            ], backend: "firestore")
        defer {
            if (testRun?.failureCount ?? 0) + (testRun?.unexpectedExceptionCount ?? 0) > 0 {
                print("daemon log:\n\(daemon.log(tail: 6000))")
            }
            _ = daemon.stop()
            daemon.removeDirectory()
        }

        let client = try daemon.client(timeoutMs: 6000)
        var acknowledged: [MemoryItem] = []
        var n = 0
        func add() throws -> MemoryItem {
            n += 1
            let it = MemoryItem(id: "fault-\(n)", userID: "fu", textContent: "fault \(n)")
            _ = try client.addMemoryItem(it)
            return it
        }
        func retries() throws -> Double { try client.healthCheck().details["retries_total"]?.numberValue ?? -1 }
        /// The next add that the breaker lets through and the emulator answers: after a fault the breaker lets
        /// a probe through once its recovery timeout has passed (health stops saying "open"), and the probe
        /// can fail again under load; waits for those events, not for a time.
        func addOnceRecovered() throws -> MemoryItem {
            var last: Error?
            for _ in 0..<20 {
                var polls = 0
                while try client.healthCheck().details["circuit_state"] == .string("open"), polls < 600 {
                    usleep(50_000)
                    polls += 1
                }
                do { return try add() } catch let e as MemoryError where e.type == .connection { last = e }
            }
            throw last ?? DaemonError("no add got through")
        }
        /// A call under a fault: the error and how long it took (ms).
        func failing() -> (MemoryError?, Double) {
            let start = monotonicNanos()
            var err: MemoryError?
            do { acknowledged.append(try add()) } catch let e as MemoryError { err = e } catch { XCTFail("\(error)") }
            return (err, Double(monotonicNanos() - start) / 1e6)
        }

        // Healthy (the emulator's first writes of a namespace can be slow: warm up), then slow.
        var warmup: [String] = []
        for _ in 0..<5 where acknowledged.isEmpty {
            do { acknowledged.append(try add()) } catch {
                warmup.append("\(error)")
                usleep(1_100_000)
            }
        }
        guard !acknowledged.isEmpty else {
            return XCTFail(
                "no write got through the proxy: \(warmup)\nproxy saw \(proxy.requests) requests\n\(daemon.log(tail: 3000))"
            )
        }
        for _ in 0..<3 { acknowledged.append(try add()) }
        proxy.mode = .latency(ms: 300)
        let start = monotonicNanos()
        acknowledged.append(try add())
        XCTAssertGreaterThanOrEqual(Double(monotonicNanos() - start) / 1e6, 300)
        proxy.mode = .pass

        // Each fault: a typed error within the 6 s deadline (plus slack for the reply), never a hang.
        for (mode, types) in [
            (FaultProxy.Mode.http(503), [ErrorType.connection]), (.reset, [.connection]),
            (.http(429), [.operation, .connection]), (.hang, [.connection]),
        ] {
            let before = try retries()
            proxy.mode = mode
            let (err, ms) = failing()
            proxy.mode = .pass
            XCTAssertNotNil(err, "\(mode) must fail the call")
            if let err {
                XCTAssertTrue(types.contains(err.type) || err.code == .deadlineExceeded, "\(mode): \(err)")
            }
            // memoryd answered (its deadline bounds the call) before the client gave up on its own.
            XCTAssertFalse(err?.message.contains("no answer from memoryd") ?? false, "\(mode): took \(ms) ms")
            XCTAssertGreaterThan(try retries(), before, "\(mode): retries are counted in health details.retries_total")
            // Let the breaker close again before the next fault.
            acknowledged.append(try addOnceRecovered())
        }

        // A sustained outage opens the breaker: health says so and calls fail fast.
        proxy.mode = .http(503)
        for _ in 0..<3 { _ = failing() }
        let h = try client.healthCheck()
        XCTAssertEqual(h.details["circuit_state"], .string("open"), "\(h)")
        XCTAssertEqual(h.status, "unhealthy")
        let requestsBefore = proxy.requests
        let (fast, fastMs) = failing()
        XCTAssertEqual(fast?.type, .connection)
        XCTAssertTrue(fast?.message.contains("circuit") ?? false, fast?.message ?? "")
        // Fails fast: without sending anything to Firestore (\(fastMs) ms here; a figure, not a check).
        XCTAssertEqual(proxy.requests, requestsBefore, "an open circuit fails without a request (\(fastMs) ms)")

        // Recovery: the emulator answers again; after the recovery timeout a probe closes the circuit.
        proxy.mode = .pass
        acknowledged.append(try addOnceRecovered())
        let healed = try client.healthCheck()
        XCTAssertEqual(healed.details["circuit_state"], .string("closed"))
        // Healthy, unless this test's own failed calls (8, plus any the emulator's slow first writes caused)
        // reach health's 10 errors in the last minute.
        let reason = healed.details["reason"]?.stringValue ?? ""
        XCTAssertTrue(
            healed.status == "healthy" || (healed.status == "degraded" && reason.contains("errors in the last minute")),
            "\(healed)")
        XCTAssertGreaterThan(proxy.faulted, 0)

        // Every acknowledged write is in the emulator: a fresh daemon straight on the emulator reads them.
        client.close()
        _ = daemon.stop()
        let reader = try startDaemon(["MEMORYD_NAMESPACE": namespace], backend: "firestore")
        defer {
            _ = reader.stop()
            reader.removeDirectory()
        }
        let rc = try reader.client()
        for it in acknowledged {
            XCTAssertEqual(try rc.getMemoryItem(it.id).textContent, it.textContent, "acknowledged \(it.id) is stored")
        }
        print(
            "firestore-faults: \(acknowledged.count) acknowledged writes read back; proxy saw \(proxy.requests) requests, faulted \(proxy.faulted)"
        )
    }
}
