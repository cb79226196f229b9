import Foundation
import Logging
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import XCTest

@testable import MemoryFirestore

/// Base of the emulator tests: each test gets its own namespace (so its own collections) on the shared emulator.
class FirestoreTestCase: XCTestCase {
    let project = "memoryd-test"
    var namespace = ""
    var emulator: FirestoreEmulator { .shared }

    override func setUpWithError() throws {
        try FirestoreEmulator.shared.ensureRunning()
        namespace = "t\(UInt32.random(in: 0...UInt32.max))"
    }

    func makeConfig(_ change: (inout FirestoreConfig) -> Void = { _ in }) -> FirestoreConfig {
        var c = FirestoreConfig(projectID: project)
        c.emulatorHost = emulator.hostPort
        c.namespace = namespace
        c.poolSize = 4
        change(&c)
        return c
    }

    func makeBackend(dimension: Int = 8, _ change: (inout FirestoreConfig) -> Void = { _ in }) throws
        -> FirestoreBackend
    {
        try FirestoreBackend(
            config: makeConfig(change), limits: Limits(embeddingDimension: dimension), logger: Logger(label: "test"))
    }

    func context(now: Timestamp = .now(), timeoutMs: UInt64 = 20_000) -> CallContext {
        CallContext(deadline: .after(milliseconds: timeoutMs), now: now)
    }

    /// An item as MemoryService would hand it over: id, timestamp in microseconds, content hash set.
    func item(
        _ id: String, user: String = "u1", session: String = "s1", type: String = "conversation", persona: String = "",
        text: String? = nil, embedding: [Float] = [], metadata: [String: JSONValue] = [:], at time: Timestamp = .now(),
        expiration: Timestamp? = nil
    ) -> MemoryItem {
        let text = text ?? "text of \(id)"
        var m = metadata
        m["content_hash"] = .string(SHA256.hexDigest(text))
        return MemoryItem(
            id: id, userID: user, sessionID: session, timestamp: time.truncatedToMicroseconds, itemType: type,
            personaActive: persona, textContent: text, embedding: embedding, metadata: m,
            expiration: expiration?.truncatedToMicroseconds)
    }

    func assertError<T>(
        _ type: ErrorType, _ body: @autoclosure () throws -> T, _ message: String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            _ = try body()
            XCTFail("expected \(type.exceptionName) \(message)", file: file, line: line)
        } catch let e as MemoryError {
            XCTAssertEqual(e.type, type, "\(e) \(message)", file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }
}

func randomVector(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1) } }

extension FirestoreEmulator {
    /// A plain REST GET of a document, as any other Firestore client would do it.
    func getDocument(project: String, path: String) throws -> (Int, JSONValue?) {
        let client = try HTTPClient()
        let r = try client.request(
            .get, url: "http://\(hostPort)/v1/projects/\(project)/databases/(default)/documents/\(path)",
            headers: ["Authorization: Bearer owner"], timeoutMs: 5000)
        return (r.status, try? JSONValue.parse(bytes: r.body))
    }
}
