import Foundation
import MemoryClient
import MemoryDomain
import MemoryTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// kill -9 during concurrent writes (sqlite): after a restart every acknowledged write is there, intact,
/// and findable by semantic search; every acknowledged delete stays deleted; a write that was in flight
/// at the kill is either absent or complete. `MEMORYD_CRASH_ROUNDS` rounds (default 3; scripts/crash-stress
/// runs more), each killing the daemon after a random 150-900 ms of writes from several threads.
final class CrashSafetyTests: XCTestCase {
    /// What one writer thread saw acknowledged, and what it had in flight when the connection died.
    final class Ledger: @unchecked Sendable {
        var added: [MemoryItem] = []
        var deleted: [String] = []
        var agentData: [String] = []
        var inFlight: [MemoryItem] = []
        var unexpected: [String] = []
    }

    static func item(_ id: String, _ n: Int) -> MemoryItem {
        var rng = SeededRandom(UInt64(truncatingIfNeeded: id.hashValue))
        return MemoryItem(
            id: id, userID: "crash-u\(n % 3)", sessionID: "s\(n % 5)",
            textContent: "text of \(id) " + String(repeating: "x", count: n % 300),
            embedding: randomEmbedding(8, &rng), metadata: ["n": .number(Double(n))])
    }

    /// Writes until the connection dies: single adds, batches of 20, deletes of its own earlier items,
    /// agent data. Records only what was acknowledged.
    static func writer(socket: String, thread: Int, round: Int, ledger: Ledger) {
        guard let client = try? MemoryClient(socketPath: socket) else { return }
        var n = 0
        while true {
            n += 1
            let base = "r\(round)-t\(thread)-\(n)"
            do {
                switch n % 10 {
                case 0:
                    let batch = (0..<20).map { item("\(base)-b\($0)", n + $0) }
                    ledger.inFlight = batch
                    let results = try client.addMemoryItems(batch)
                    for (i, r) in results.enumerated() {
                        if let e = r.error {
                            ledger.unexpected.append("\(batch[i].id): \(e)")
                        } else {
                            ledger.added.append(batch[i])
                        }
                    }
                case 5 where ledger.added.count > 10:
                    let victim = ledger.added.remove(at: ledger.added.count / 2)
                    ledger.inFlight = [victim]
                    do {
                        try client.deleteMemoryItem(victim.id)
                        ledger.deleted.append(victim.id)
                    } catch let e where e.type != .unspecified && e.code != .unavailable {
                        ledger.unexpected.append("delete \(victim.id): \(e)")
                    }
                case 7:
                    let id = "agent_\(base)"
                    _ = try client.addRawAgentData(
                        AgentData(id: id, agentID: "crash-agent", dataType: "t", content: .string(base)))
                    ledger.agentData.append(id)
                default:
                    let it = item(base, n)
                    ledger.inFlight = [it]
                    _ = try client.addMemoryItem(it)
                    ledger.added.append(it)
                }
                ledger.inFlight = []
            } catch let e {
                // The daemon died: only a connection-level error is expected.
                if e.type != .unspecified && e.type != .connection { ledger.unexpected.append("\(base): \(e)") }
                return
            }
        }
    }

    func testAcknowledgedWritesSurviveKill9DuringConcurrentWrites() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["MEMORYD_CRASH_ROUNDS"] ?? "") ?? 3
        let threads = 6
        let daemon = try startDaemon(["MEMORYD_WORKERS": "4"])
        defer {
            daemon.kill9()
            daemon.removeDirectory()
        }
        var all = Ledger()
        var rng = SeededRandom(UInt64(getpid()))
        var acknowledgedPerRound: [Int] = []

        for round in 0..<rounds {
            let ledgers = (0..<threads).map { _ in Ledger() }
            let group = DispatchGroup()
            let socket = daemon.socketPath
            for t in 0..<threads {
                let ledger = ledgers[t]
                DispatchQueue.global().async(group: group) {
                    Self.writer(socket: socket, thread: t, round: round, ledger: ledger)
                }
            }
            usleep(UInt32.random(in: 150_000...900_000, using: &rng))
            daemon.kill9()
            XCTAssertEqual(group.wait(timeout: .now() + 30), .success, "writers stop once the daemon is gone")
            try daemon.start()

            let client = try daemon.client()
            var acknowledged = 0
            for l in ledgers {
                XCTAssertEqual(l.unexpected, [], "round \(round)")
                acknowledged += l.added.count + l.deleted.count + l.agentData.count
                all.added += l.added
                all.deleted += l.deleted
                all.agentData += l.agentData
                for it in l.inFlight {
                    // Written or not, but never half-written.
                    if let got = try? client.getMemoryItem(it.id) {
                        XCTAssertEqual(got.textContent, it.textContent, "in-flight \(it.id) is complete if present")
                        XCTAssertEqual(got.embedding, it.embedding)
                    }
                }
            }
            acknowledgedPerRound.append(acknowledged)
            // Every acknowledged write of this and all earlier rounds.
            let deleted = Set(all.deleted)
            all.added.removeAll { deleted.contains($0.id) }
            var missing: [String] = []
            for it in all.added {
                do {
                    let got = try client.getMemoryItem(it.id)
                    XCTAssertEqual(got.textContent, it.textContent, it.id)
                    XCTAssertEqual(got.embedding, it.embedding, it.id)
                    XCTAssertEqual(got.metadata["n"], it.metadata["n"], it.id)
                } catch {
                    missing.append("\(it.id): \(error)")
                }
            }
            XCTAssertEqual(
                missing.count, 0, "round \(round): acknowledged adds lost after kill -9: \(missing.prefix(10))")
            for id in all.deleted {
                assertThrows(.notFound) { try client.getMemoryItem(id) }
            }
            for id in all.agentData { XCTAssertNoThrow(try client.getAgentData(id), id) }
            // The embedding index was rebuilt: a stored item's own embedding finds it first.
            for it in all.added.suffix(5) {
                let hits = try client.semanticSearch(
                    SearchRequest(userID: it.userID, queryEmbedding: it.embedding, topK: 1))
                XCTAssertEqual(hits.first?.item.id, it.id, "search finds \(it.id) after restart")
            }
            client.close()
        }
        print(
            "crash-safety: \(rounds) rounds, acknowledged writes per round: \(acknowledgedPerRound), items checked at the end: \(all.added.count)"
        )
        XCTAssertGreaterThan(acknowledgedPerRound.reduce(0, +), rounds * 10, "the writers got real work acknowledged")
        _ = all
        all = Ledger()
    }
}
