import Foundation
import MemoryClient
import MemoryDomain
import MemoryTestSupport
import XCTest

/// Deterministic pseudo-random numbers for test data.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomEmbedding(_ dim: Int, _ rng: inout SeededRandom) -> [Float] {
    (0..<dim).map { _ in Float.random(in: -1...1, using: &rng) }
}

/// Asserts that `body` throws a MemoryError of `type` (and `code`), and returns it.
@discardableResult
func assertThrows<T>(
    _ type: ErrorType, code: StatusCode? = nil, file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> T
) -> MemoryError? {
    do {
        let v = try body()
        XCTFail("expected \(type.exceptionName), got \(v)", file: file, line: line)
        return nil
    } catch let e as MemoryError {
        XCTAssertEqual(e.type, type, "\(e)", file: file, line: line)
        XCTAssertEqual(e.code, code ?? type.statusCode, "\(e)", file: file, line: line)
        return e
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
        return nil
    }
}

/// The backends the behaviour suite (MethodsTests) runs against: `MEMORYD_TEST_BACKENDS=sqlite,firestore`;
/// by default both under CI (`CI=true`: a missing emulator then fails the test), sqlite alone elsewhere.
enum Backends {
    static var selected: [String] {
        if let v = ProcessInfo.processInfo.environment["MEMORYD_TEST_BACKENDS"], !v.isEmpty {
            return v.split(separator: ",").map(String.init)
        }
        if Requirement.isCI { return ["sqlite", "firestore"] }
        print("MethodsTests: sqlite only (set MEMORYD_TEST_BACKENDS=sqlite,firestore or CI=true for Firestore too)")
        return ["sqlite"]
    }
}

/// Starts a daemon with a small embedding dimension unless told otherwise. On `firestore` it uses the
/// shared emulator (started on first use) and a namespace of its own.
func startDaemon(
    _ extraEnv: [String: String] = [:], arguments: [String] = [], dimension: Int = 8,
    backend: String = "sqlite"
) throws -> DaemonProcess {
    var env = ["MEMORYD_EMBEDDING_DIMENSION": String(dimension)]
    if backend == "firestore" {
        try FirestoreEmulator.shared.ensureRunning()
        env["MEMORYD_BACKEND"] = "firestore"
        env["MEMORYD_FIRESTORE_EMULATOR_HOST"] = FirestoreEmulator.shared.hostPort
        env["MEMORYD_FIRESTORE_PROJECT_ID"] = "memoryd-test"
        env["MEMORYD_NAMESPACE"] = "it" + IDGenerator.uuid().prefix(8)
    }
    for (k, v) in extraEnv { env[k] = v }
    let d = DaemonProcess(arguments: arguments, environment: env)
    try d.start()
    return d
}
