import Foundation
import MemoryTestSupport
import XCTest

/// scripts/install's usage errors and messages (SystemdTests covers a whole install into a root).
final class InstallScriptTests: XCTestCase {
    let script = TestPaths.packageRoot + "/scripts/install"

    func install(_ arguments: [String]) throws -> CommandResult {
        try runProcess("/bin/bash", [script] + arguments)
    }

    func testUsageErrorsExit64NamingTheOption() throws {
        for (args, message) in [
            (["--root"], "--root needs a value"), (["--root="], "--root needs a value"),
            (["--from"], "--from needs a value"), (["--root", "--enable"], "--root needs a value"),
            (["--enable", "--root", "/tmp/x"], "cannot go with --root"),
            (["--enable", "--no-systemctl"], "cannot go with --no-systemctl"), (["--bogus"], "unknown option --bogus"),
        ] {
            let r = try install(args)
            XCTAssertEqual(r.status, 64, "\(args)\n\(r)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
    }

    func testRootInstallRunsCheckConfigAndUninstallKeepsOnlyWhatExists() throws {
        let root = TestPaths.makeTempDirectory("root")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let r = try install(["--root", root, "--from", TestPaths.binDirectory])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stderr.contains("memoryd: the configuration is valid"), "check-config ran: \(r.stderr)")

        // Nothing ever created <root>/var/lib/memoryd: uninstall must not claim to have kept it.
        let u = try install(["--uninstall", "--root", root])
        XCTAssertEqual(u.status, 0, "\(u)")
        XCTAssertTrue(u.stderr.contains("kept \(root)/etc/memoryd (--purge removes them)"), u.stderr)
        XCTAssertFalse(u.stderr.contains("var/lib/memoryd"), u.stderr)
        let again = try install(["--uninstall", "--purge", "--root", root])
        XCTAssertTrue(again.stderr.contains("removed memoryd, and \(root)/etc/memoryd"), again.stderr)
        XCTAssertEqual(try install(["--uninstall", "--root", root]).stderr, "install: removed memoryd\n")
    }

    func testEnableOnAHostWithoutSystemdFailsLoudly() throws {
        guard !FileManager.default.fileExists(atPath: "/run/systemd/system") else {
            throw XCTSkip("this host runs systemd: --enable would really enable memoryd")
        }
        let r = try install(["--enable", "--from", "/nonexistent"])
        XCTAssertEqual(r.status, 1, "\(r)")
        XCTAssertTrue(r.stderr.contains("this host does not run systemd"), r.stderr)
    }
}
