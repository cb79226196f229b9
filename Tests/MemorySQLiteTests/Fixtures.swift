import Logging
import MemoryDomain
import MemoryUtilities
import XCTest

@testable import MemorySQLite

#if canImport(Glibc)
import Glibc
#endif

/// A temporary data directory per test, and helpers to fill a backend.
class SQLiteTestCase: XCTestCase {
    var directory = ""
    var backend: SQLiteBackend!
    var connection: StoreConnection!
    let limits = Limits(embeddingDimension: 8)
    /// A fixed "now" so expiration tests are exact.
    let now = Timestamp(seconds: 1_800_000_000)
    var context: CallContext { CallContext(now: now) }
    /// The search index's budget for backends this test case makes.
    var indexBudgetBytes = Int.max

    override func setUpWithError() throws {
        var template = Array("/tmp/memorysqlite-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        XCTAssertNotNil(made)
        directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/data"
        backend = try makeBackend()
        connection = try backend.makeConnection()
    }

    override func tearDown() {
        connection?.close()
        backend?.shutdown()
        connection = nil
        backend = nil
        let parent = String(directory.dropLast("/data".count))
        _ = system("rm -rf '\(parent)'")
    }

    func makeBackend(batchSize: Int = 400) throws -> SQLiteBackend {
        try SQLiteBackend(
            dataDirectory: directory, namespace: "test", limits: limits, batchSize: batchSize,
            indexBudgetBytes: indexBudgetBytes, logger: Logger(label: "test.sqlite"))
    }

    /// A context whose deadline is `milliseconds` from now.
    func context(deadlineIn milliseconds: UInt64) -> CallContext {
        CallContext(deadline: .after(milliseconds: milliseconds), now: now)
    }

    /// An item as MemoryService would pass it: timestamp set, content hash set, type defaulted.
    func item(
        _ id: String, user: String = "u1", session: String = "s1", type: String = "conversation",
        persona: String = "", text: String? = nil, embedding: [Float] = [], metadata: [String: JSONValue] = [:],
        at seconds: Int64? = nil, expiresIn: Double? = nil
    ) -> MemoryItem {
        let text = text ?? "text of \(id)"
        var metadata = metadata
        metadata["content_hash"] = .string(SHA256.hexDigest(text))
        let ts = seconds.map { Timestamp(seconds: $0) } ?? now
        return MemoryItem(
            id: id, userID: user, sessionID: session, timestamp: ts, itemType: type,
            personaActive: persona, textContent: text, embedding: embedding, metadata: metadata,
            expiration: expiresIn.map { now.adding(seconds: $0) })
    }

    func assertThrows<T>(_ type: ErrorType, _ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line)
    {
        do {
            _ = try body()
            XCTFail("expected \(type.exceptionName)", file: file, line: line)
        } catch let error as MemoryError {
            XCTAssertEqual(error.type, type, "\(error)", file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }
}

enum TestPaths {
    /// A fresh directory under /tmp.
    static func temporaryDirectory() -> String {
        var template = Array("/tmp/memorysqlite-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A deterministic generator (SplitMix64) so failures reproduce.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func vector(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &self) } }
}
