import Foundation
import MemoryClient
import MemoryTestSupport
import MemoryUtilities
import XCTest

/// Short versions of scripts/load-test, driving the real memory-load tool against a real daemon:
/// 200 connections × 20 calls with zero errors, and a client that never reads its responses does not make
/// the others fail and does not stay connected past max_output_bytes. Latencies are printed as figures, not
/// checked: on a shared 2-core machine they say more about the neighbours than about memoryd
/// (scripts/load-test measures them, docs/reliability.md has the figures).
final class LoadTests: XCTestCase {
    var daemon: DaemonProcess!

    override func tearDown() {
        if let daemon {
            XCTAssertEqual(daemon.stop(), 0, "memoryd should exit 0 on SIGTERM\n\(daemon.log(tail: 2000))")
            daemon.removeDirectory()
        }
    }

    /// Runs memory-load and returns its JSON report.
    private func load(_ args: [String]) throws -> JSONValue {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestPaths.binary("memory-load"))
        p.arguments = ["--socket", daemon.socketPath] + args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let report = try JSONValue.parse(bytes: Array(text.utf8))
        print("memory-load \(args.joined(separator: " ")): \(text)")
        return report
    }

    func test200ConnectionsTimes20CallsWithoutErrors() throws {
        daemon = try startDaemon()
        let r = try load(["--connections", "200", "--calls", "20", "--threads", "8"])
        XCTAssertEqual(r["errors"]?.numberValue, 0, "\(r["error_samples"] ?? .null)")
        XCTAssertEqual(r["calls"]?.numberValue, 4000)
        XCTAssertNoThrow(try daemon.client().ping())
    }

    func testNonReadingClientIsDisconnectedAndOthersCarryOn() throws {
        daemon = try startDaemon(["MEMORYD_MAX_OUTPUT_BYTES": "4194304"])
        let args = ["--connections", "40", "--calls", "100", "--threads", "4", "--non-reader-item-bytes", "262144"]
        let base = try load(args)
        let with = try load(args + ["--non-reader"])
        XCTAssertEqual(base["errors"]?.numberValue, 0)
        XCTAssertEqual(with["errors"]?.numberValue, 0, "\(with["error_samples"] ?? .null)")
        XCTAssertEqual(with["non_reader_disconnected"], .bool(true), "\(with["non_reader_detail"] ?? .null)")
        let p99 = base["p99_ms"]?.numberValue ?? 0, p99With = with["p99_ms"]?.numberValue ?? 0
        print("figure (not checked): p99 \(p99) ms without the non-reading client, \(p99With) ms with it")
        XCTAssertTrue(
            daemon.log().contains("not reading its responses"), "the daemon logs why it disconnected the client")
    }
}
