import Foundation
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import XCTest

@testable import MemoryFirestore

final class FirestoreResilienceTests: FirestoreTestCase {
    /// Stopping the emulator opens the circuit (calls then fail fast with ConnectionError, within their
    /// deadline); once it is back and the recovery timeout has passed, one probe closes it again.
    func testCircuitBreakerOpensWhenEmulatorStopsAndClosesWhenItReturns() throws {
        let backend = try makeBackend {
            $0.failureThreshold = 3
            $0.recoveryTimeoutS = 1
            $0.maxRetries = 2
            $0.requestTimeoutMs = 5000  // a restarted emulator is slow to answer its first request
        }
        let conn = try backend.makeConnection()
        defer { conn.close() }
        try conn.addMemoryItem(item("mem_before"), upsert: false, context: context())

        emulator.stop()
        defer { try? emulator.ensureRunning() }
        // First call: connection refused, retried, and the breaker opens on the way (a ConnectionError, not a
        // wait: its deadline bounds it).
        assertError(.connection, try conn.getMemoryItem(id: "mem_before", context: context(timeoutMs: 5000)))
        for _ in 0..<3 where backend.statistics()["circuit_state"] != .string("open") {
            _ = try? conn.getMemoryItem(id: "mem_before", context: context(timeoutMs: 5000))
        }
        XCTAssertEqual(backend.statistics()["circuit_state"], .string("open"))

        // Open: fail fast, with a message saying so, without trying Firestore (no retry counted).
        let retriesBefore = backend.statistics()["retries_total"]
        do {
            _ = try conn.getMemoryItem(id: "mem_before", context: context(timeoutMs: 200))
            XCTFail("expected ConnectionError")
        } catch let e {
            XCTAssertEqual(e.type, .connection)
            XCTAssertTrue(e.message.contains("circuit open"), e.message)
        }
        XCTAssertEqual(backend.statistics()["retries_total"], retriesBefore)
        let h = conn.health(context: context(timeoutMs: 500))
        XCTAssertEqual(h.status, .unhealthy)
        XCTAssertEqual(h.details["circuit_state"], .string("open"))
        XCTAssertNotEqual(h.details["firestore_error"], .string(""))
        XCTAssertGreaterThan(backend.statistics()["retries_total"]?.numberValue ?? 0, 0)

        // Back on the same port (the emulator keeps data in memory, so the item is gone).
        try emulator.ensureRunning()
        // A restarted emulator answers HTTP before its gRPC side is warm: its first gRPC call can take many
        // seconds on a loaded machine. Warm it with a connection of another backend (its own breaker).
        let warm = try makeBackend { $0.requestTimeoutMs = 60_000 }.makeConnection()
        assertError(.notFound, try warm.getMemoryItem(id: "mem_before", context: context(timeoutMs: 60_000)))
        warm.close()
        // After the recovery timeout the breaker lets a probe through; the restarted emulator's first answers
        // can be slow under load, and a probe that times out opens the breaker again: wait for those events,
        // not for a time, and probe until one is answered.
        func waitWhileOpen() {
            var waits = 0
            while backend.statistics()["circuit_state"] == .string("open"), waits < 1200 {
                usleep(50_000)
                waits += 1
            }
        }
        waitWhileOpen()
        XCTAssertEqual(backend.statistics()["circuit_state"], .string("half_open"))
        var probes = 0
        var answered: MemoryError?
        while answered == nil, probes < 20 {
            probes += 1
            do {
                _ = try conn.getMemoryItem(id: "mem_before", context: context())
            } catch let e where e.type == .connection {
                waitWhileOpen()
            } catch {
                answered = error
            }
        }
        XCTAssertEqual(answered?.type, .notFound, "the emulator lost its data: \(String(describing: answered))")
        XCTAssertEqual(backend.statistics()["circuit_state"], .string("closed"))
        XCTAssertEqual(conn.health(context: context()).status, .healthy)
    }

    /// Through the fault proxy: each HTTP/2-level fault gives its typed error within the call's deadline, and
    /// the same connection works again right after.
    func testFaultsThroughTheProxyThenTheConnectionRecovers() throws {
        // The emulator's first write to a collection can take seconds: make it directly, with time to spare.
        let direct = try makeBackend().makeConnection()
        try direct.addMemoryItem(item("mem_proxy"), upsert: false, context: context())
        direct.close()
        let proxy = try FaultProxy(upstreamPort: emulator.port)
        defer { proxy.stop() }
        let backend = try makeBackend {
            $0.emulatorHost = proxy.hostPort
            $0.requestTimeoutMs = 800
            $0.maxRetries = 1
            $0.failureThreshold = 1000
        }
        let conn = try backend.makeConnection()
        defer { conn.close() }
        XCTAssertEqual(try conn.getMemoryItem(id: "mem_proxy", context: context()).id, "mem_proxy")
        for (mode, expected) in [
            (FaultProxy.Mode.hang, ErrorType.connection), (.http(503), .connection), (.http(429), .operation),
            (.reset, .connection), (.latency(ms: 50), nil),
        ] {
            proxy.mode = mode
            let start = monotonicNanos()
            do {
                _ = try conn.getMemoryItem(id: "mem_proxy", context: context(timeoutMs: 3000))
                XCTAssertNil(expected, "\(mode) must fail")
            } catch {
                XCTAssertEqual(error.type, expected, "\(mode): \(error)")
            }
            XCTAssertLessThan(Double(monotonicNanos() - start) / 1e6, 3200, "\(mode): within the deadline")
            proxy.mode = .pass
            XCTAssertEqual(try conn.getMemoryItem(id: "mem_proxy", context: context(timeoutMs: 3000)).id, "mem_proxy")
        }
        XCTAssertGreaterThan(proxy.faulted, 0)
    }

    func testDeadlineBoundsRetries() throws {
        let backend = try makeBackend {
            $0.emulatorHost = "127.0.0.1:\(freeTCPPort())"  // nobody listens
            $0.maxRetries = 50
            $0.failureThreshold = 1000
        }
        let conn = try backend.makeConnection()
        defer { conn.close() }
        // The deadline, not the 50 retries, ends the call.
        do {
            _ = try conn.getMemoryItem(id: "mem_x", context: context(timeoutMs: 700))
            XCTFail("expected ConnectionError")
        } catch {
            XCTAssertEqual(error.type, .connection)
            XCTAssertTrue(error.message.contains("deadline"), error.message)
        }
        XCTAssertLessThan(backend.statistics()["retries_total"]?.numberValue ?? 50, 50)
    }

    /// `poolSize` workers, each with its own connection, doing 100 calls at once: never more than
    /// `poolSize` TCP connections to the emulator.
    func testConnectionsStayWithinPoolSize() throws {
        let poolSize = 4
        let backend = try makeBackend { $0.poolSize = poolSize }
        let port = emulator.port
        let baseline = establishedConnections(toPort: port)
        let connections = try (0..<poolSize).map { _ in try backend.makeConnection() }
        let done = DispatchGroup()
        let errors = LockedCounter()
        let running = LockedCounter()
        for (w, conn) in connections.enumerated() {
            let box = UncheckedBox(conn)
            DispatchQueue.global().async(group: done) {
                running.add()
                for i in 0..<25 {
                    let ctx = CallContext(deadline: .after(milliseconds: 20_000))
                    do {
                        if i % 2 == 0 {
                            var it = MemoryItem(
                                id: "mem_w\(w)_\(i)", userID: "pool", sessionID: "s", timestamp: .now(),
                                itemType: "conversation", textContent: "x")
                            it.metadata["content_hash"] = .string(SHA256.hexDigest("x"))
                            try box.value.addMemoryItem(it, upsert: false, context: ctx)
                        } else {
                            _ = try box.value.conversationHistory(HistoryQuery(userID: "pool", limit: 5), context: ctx)
                        }
                    } catch {
                        errors.add()
                    }
                }
            }
        }
        var maxSeen = 0
        while done.wait(timeout: .now() + .milliseconds(20)) == .timedOut {
            maxSeen = max(maxSeen, establishedConnections(toPort: port) - baseline)
        }
        XCTAssertEqual(errors.value, 0)
        XCTAssertGreaterThan(maxSeen, 0)
        XCTAssertLessThanOrEqual(maxSeen, poolSize)
        for c in connections { c.close() }
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() {
        lock.lock()
        n += 1
        lock.unlock()
    }
    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return n
    }
}

/// Hands a connection to the one thread that uses it.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
