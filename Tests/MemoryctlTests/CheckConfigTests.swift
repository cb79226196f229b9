import Foundation
import MemoryTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `memoryd --check-config`, the start's checks and SIGHUP's report.
final class CheckConfigTests: XCTestCase {
    var directory = ""

    override func setUp() { directory = TestPaths.makeTempDirectory("cfg") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    func memoryd(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try runProcess(TestPaths.binary("memoryd"), arguments, environment: environment)
    }

    func testCheckConfigPrintsTheEffectiveConfigurationWithSources() throws {
        let file = directory + "/memoryd.toml"
        try "log_level = \"debug\"\n[sqlite]\nbatch_size = 50\n".write(toFile: file, atomically: true, encoding: .utf8)
        let r = try memoryd(
            ["--config", file, "--check-config", "--data-dir", directory + "/data"],
            environment: ["MEMORYD_SOCKET": directory + "/m.sock", "MEMORYD_MAX_CONNECTIONS": "7"])
        XCTAssertEqual(r.status, 0, "\(r)")
        let lines = r.stdout.lines
        XCTAssertTrue(lines.contains("# configuration file: \(file)"), r.stdout)
        func line(_ key: String) -> String? { lines.first { $0.hasPrefix(key + " = ") } }
        XCTAssertEqual(
            line("socket_path")?.split(separator: "#").last.map { String($0).trimmed }, "environment MEMORYD_SOCKET")
        XCTAssertTrue(line("socket_path")?.hasPrefix("socket_path = \"\(directory)/m.sock\"") == true, r.stdout)
        XCTAssertEqual(
            line("max_connections")?.split(separator: "#").last.map { String($0).trimmed },
            "environment MEMORYD_MAX_CONNECTIONS")
        XCTAssertEqual(line("log_level")?.split(separator: "#").last.map { String($0).trimmed }, file)
        XCTAssertEqual(line("data_dir")?.split(separator: "#").last.map { String($0).trimmed }, "flag")
        XCTAssertEqual(line("embedding_dimension")?.split(separator: "#").last.map { String($0).trimmed }, "default")
        XCTAssertTrue(lines.contains("[sqlite]"), r.stdout)
        XCTAssertTrue(line("batch_size")?.hasPrefix("batch_size = 50 ") == true, r.stdout)
        XCTAssertEqual(r.stderr, "memoryd: the configuration is valid\n")

        // No file: says so, and which path it looked for.
        let none = try memoryd(["--check-config", "--data-dir", directory + "/data"])
        XCTAssertEqual(none.status, 0, "\(none)")
        XCTAssertTrue(
            none.stdout.contains("# configuration file: none (/etc/memoryd/memoryd.toml does not exist)")
                || none.stdout.contains("# configuration file: /etc/memoryd/memoryd.toml"), none.stdout)
    }

    /// What the start refuses, --check-config refuses with the same exit status (2), naming the key.
    func testCheckConfigAndStartRefuseAMissingGroupAndAnUncreatableDataDirectory() throws {
        let group = try memoryd(
            ["--check-config", "--data-dir", directory + "/data"], environment: ["MEMORYD_SOCKET_GROUP": "nosuchgroup"])
        XCTAssertEqual(group.status, 2, "\(group)")
        XCTAssertTrue(group.stderr.contains("error: socket_group: group \"nosuchgroup\" does not exist"), group.stderr)
        let start = try memoryd(
            ["--socket", directory + "/m.sock", "--data-dir", directory + "/data"],
            environment: ["MEMORYD_SOCKET_GROUP": "nosuchgroup"])
        XCTAssertEqual(start.status, 2, "\(start)")
        XCTAssertTrue(start.stderr.contains("socket_group"), start.stderr)

        let plainFile = directory + "/a-file"
        try "".write(toFile: plainFile, atomically: true, encoding: .utf8)
        let data = try memoryd(["--check-config", "--data-dir", plainFile + "/data"])
        XCTAssertEqual(data.status, 2, "\(data)")
        XCTAssertTrue(data.stderr.contains("error: data_dir: "), data.stderr)
        let dataStart = try memoryd(["--socket", directory + "/m.sock", "--data-dir", plainFile + "/data"])
        XCTAssertEqual(dataStart.status, 2, "\(dataStart)")

        let badValue = try memoryd(["--check-config"], environment: ["MEMORYD_EMBEDDING_DIMENSION": "4096"])
        XCTAssertEqual(badValue.status, 2, "\(badValue)")
        XCTAssertTrue(badValue.stderr.contains("embedding_dimension"), badValue.stderr)
    }

    /// A backend that does not answer is a warning for --check-config (exit 0) and at start (memoryd serves).
    func testUnreachableBackendIsAWarningForCheckConfigAndAtStart() throws {
        let port = freeTCPPort()  // nothing listens there
        let args = ["--backend", "firestore", "--project-id", "p", "--emulator-host", "127.0.0.1:\(port)"]
        let check = try memoryd(args + ["--check-config"])
        XCTAssertEqual(check.status, 0, "\(check)")
        XCTAssertTrue(check.stderr.contains("warning: firestore.emulator_host: "), check.stderr)
        XCTAssertTrue(check.stderr.contains("the configuration is valid (with warnings)"), check.stderr)

        let daemon = DaemonProcess(arguments: args)
        defer { daemon.removeDirectory() }
        try daemon.start()
        XCTAssertTrue(daemon.log().contains("the backend did not answer its first health probe"), daemon.log())
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testSIGHUPNamesWhatItAppliedAndWhatNeedsARestart() throws {
        let daemon = DaemonProcess()
        defer { daemon.removeDirectory() }
        try daemon.start()
        daemon.writeConfig("log_level = \"debug\"\nembedding_dimension = 8\n")
        daemon.signal(SIGHUP)
        let deadline = Date().addingTimeInterval(20)
        while !daemon.log().contains("apply only after a restart") && Date() < deadline { usleep(20_000) }
        let log = daemon.log()
        XCTAssertTrue(log.contains("configuration reloaded applied=\"log_level: info -> debug\""), log)
        XCTAssertTrue(log.contains("needs_restart=\"embedding_dimension: 768 -> 8\""), log)
        XCTAssertTrue(
            log.contains("apply only after a restart; running with the old values needs_restart=embedding_dimension"),
            log)

        // The same file again: nothing changed, and the restart is still pending.
        daemon.signal(SIGHUP)
        let until = Date().addingTimeInterval(20)
        while !daemon.log().contains("applied=\"nothing changed\"") && Date() < until { usleep(20_000) }
        XCTAssertTrue(daemon.log().contains("applied=\"nothing changed\""), daemon.log())
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// Without a configuration file (the default path, absent), a reload says so instead of "reloaded".
    func testSIGHUPWithoutAConfigurationFileSaysSo() throws {
        guard !FileManager.default.fileExists(atPath: "/etc/memoryd/memoryd.toml") else {
            throw XCTSkip("this host has /etc/memoryd/memoryd.toml")
        }
        // The last --config wins: the default path, which does not exist here.
        let daemon = DaemonProcess(arguments: ["--config", "/etc/memoryd/memoryd.toml"])
        defer { daemon.removeDirectory() }
        try daemon.start()
        XCTAssertTrue(
            daemon.log().contains("no configuration file; defaults, environment and flags apply"), daemon.log())
        daemon.signal(SIGHUP)
        let deadline = Date().addingTimeInterval(20)
        while !daemon.log().contains("there is no configuration file") && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(
            daemon.log().contains(
                "configuration reloaded, but there is no configuration file: defaults, environment and flags apply"),
            daemon.log())
        XCTAssertEqual(daemon.stop(), 0)
    }
}
