import Foundation
import MemoryBackends
import MemoryDomain
import MemoryTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The systemd side: unit files, socket activation, sd_notify, the sample config, the install script.
final class SystemdTests: XCTestCase {
    let systemdDir = TestPaths.packageRoot + "/systemd"

    func require(_ tool: String) throws -> String {
        guard let path = findExecutable(tool) else {
            throw Requirement.unavailable("\(tool) is not installed (scripts/install-deps installs it)")
        }
        return path
    }

    func testUnitFilesVerify() throws {
        let analyze = try require("systemd-analyze")
        let dir = TestPaths.makeTempDirectory("units")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for unit in ["memoryd.service", "memoryd.socket"] {
            var text = try String(contentsOfFile: "\(systemdDir)/\(unit)", encoding: .utf8)
            // verify checks that ExecStart's binary exists: point it at the one just built.
            text = text.replacingOccurrences(of: "/usr/local/bin/memoryd", with: TestPaths.binary("memoryd"))
            try text.write(toFile: "\(dir)/\(unit)", atomically: true, encoding: .utf8)
        }
        let r = try runProcess(analyze, ["verify", "--man=no", "\(dir)/memoryd.socket", "\(dir)/memoryd.service"])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertEqual(r.stderr.trimmed, "", "no warnings")

        // The hardening, as systemd rates it (0 = locked down, 10 = fully exposed).
        let security = try runProcess(analyze, ["security", "--offline=true", "--no-pager", "\(dir)/memoryd.service"])
        let overall = try XCTUnwrap(
            security.stdout.lines.first { $0.contains("Overall exposure level") }, "\(security)")
        let afterName = try XCTUnwrap(overall.range(of: "memoryd.service: "), overall).upperBound
        let score = try XCTUnwrap(overall[afterName...].split(separator: " ").first.flatMap { Double($0) }, overall)
        XCTAssertLessThanOrEqual(score, 2.0, overall)

        let service = try String(contentsOfFile: "\(systemdDir)/memoryd.service", encoding: .utf8)
        for line in [
            "Type=notify", "ExecStart=/usr/local/bin/memoryd --config /etc/memoryd/memoryd.toml",
            "ExecReload=/bin/kill -HUP $MAINPID", "User=memoryd", "Group=memoryd", "RuntimeDirectory=memoryd",
            "StateDirectory=memoryd", "WatchdogSec=30", "Restart=on-failure", "ProtectSystem=strict",
            "NoNewPrivileges=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "MemoryDenyWriteExecute=yes",
            "SystemCallFilter=@system-service", "CapabilityBoundingSet=",
        ] {
            XCTAssertTrue(service.lines.contains(line), "memoryd.service has \(line)")
        }
        let socket = try String(contentsOfFile: "\(systemdDir)/memoryd.socket", encoding: .utf8)
        for line in [
            "ListenStream=/run/memoryd/memoryd.sock", "SocketMode=0660", "SocketUser=memoryd", "SocketGroup=memoryd",
        ] {
            XCTAssertTrue(socket.lines.contains(line), "memoryd.socket has \(line)")
        }
    }

    /// Every key of SPEC §6 is in the sample, commented out with its default: uncommented, the file
    /// loads to exactly the defaults.
    func testSampleConfigListsEveryKeyWithItsDefault() throws {
        let sample = try String(contentsOfFile: "\(systemdDir)/memoryd.toml", encoding: .utf8)
        func load(_ text: String?) throws -> DaemonConfig {
            var c = try DaemonConfig.load(file: text, env: [:], backends: BackendCatalog.all)
            c.sources = [:]  // where a value came from is not what this compares
            c.configFile = nil
            return c
        }
        let defaults = try load(nil)
        XCTAssertEqual(try load(sample), defaults)
        var uncommented: [String] = []
        var section = ""
        var seen: Set<String> = []
        for line in sample.lines {
            if line.hasPrefix("[") { section = String(line.dropFirst().dropLast()) + "." }
            if line.hasPrefix("# "), let eq = line.range(of: " = "),
                !line.dropFirst(2).contains(" ") || line.dropFirst(2).firstIndex(of: " ") == eq.lowerBound
            {
                let key = String(line[line.index(line.startIndex, offsetBy: 2)..<eq.lowerBound])
                seen.insert(section + key)
                uncommented.append(String(line.dropFirst(2)))
            } else {
                uncommented.append(line)
            }
        }
        let keys = DaemonConfig.coreKeys + BackendCatalog.all.flatMap { $0.keys.map(\.name) }
        XCTAssertEqual(seen, Set(keys), "the sample lists every key once")
        XCTAssertEqual(try load(uncommented.joined(separator: "\n")), defaults)
    }

    func testSocketActivation() throws {
        let activate = try require("systemd-socket-activate")
        let dir = TestPaths.makeTempDirectory("sa")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "".write(toFile: dir + "/memoryd.toml", atomically: true, encoding: .utf8)
        let log = dir + "/log"
        // --socket names a path memoryd must NOT bind: the activated socket wins.
        let p = try SpawnedProcess(
            activate,
            [
                "-l", dir + "/activated.sock", "-E", "MEMORYD_EMBEDDING_DIMENSION=4",
                TestPaths.binary("memoryd"), "--config", dir + "/memoryd.toml",
                "--data-dir", dir + "/data", "--socket", dir + "/own.sock",
            ],
            environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"],
            output: log)
        // systemd-socket-activate binds before it waits; wait for the socket to appear.
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: dir + "/activated.sock") && Date() < deadline { usleep(10_000) }

        // The first connection starts memoryd; the call waits in the backlog until it serves.
        let ping = try memoryctl(["ping", "--socket", dir + "/activated.sock"])
        XCTAssertEqual(ping.status, 0, "\(ping)\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        XCTAssertEqual(
            try memoryctl(["add", "--user", "u", "--id", "sa1", "--socket", dir + "/activated.sock"]).status, 0)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertTrue(
            text.contains("using the socket systemd activated") && text.contains("socket=\(dir)/activated.sock"), text)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/own.sock"), "memoryd did not bind its own socket")

        kill(p.pid, SIGTERM)  // systemd-socket-activate exec'd memoryd: same pid
        XCTAssertEqual(p.wait(timeout: 30), 0, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    func testNotifyReadyStatusWatchdogStoppingInOrder() throws {
        // WATCHDOG_USEC as systemd sets it for WatchdogSec=1 (no WATCHDOG_PID: any pid may send).
        let daemon = DaemonProcess(environment: ["WATCHDOG_USEC": "1000000"])
        defer { daemon.removeDirectory() }
        try daemon.start()
        XCTAssertEqual(try memoryctl(["ping"], socket: daemon.socketPath).status, 0)
        usleep(1_600_000)
        let pid = daemon.pid
        XCTAssertEqual(daemon.stop(), 0, daemon.log())
        _ = daemon.collectNotifications(timeoutMs: 200)
        let lines = daemon.notifications.flatMap { $0.split(separator: "\n").map(String.init) }
        let ready = try XCTUnwrap(lines.firstIndex(of: "READY=1"), "\(lines)")
        let status = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("STATUS=") }, "\(lines)")
        let stopping = try XCTUnwrap(lines.firstIndex(of: "STOPPING=1"), "\(lines)")
        XCTAssertLessThan(ready, status, "\(lines)")
        XCTAssertLessThan(status, stopping, "\(lines)")
        XCTAssertTrue(lines[..<stopping].contains("WATCHDOG=1"), "watchdog pings while serving: \(lines)")
        XCTAssertTrue(lines[status].hasPrefix("STATUS=serving "), lines[status])
        XCTAssertTrue(lines.contains("MAINPID=\(pid)"), "\(lines)")
    }

    /// MemoryDenyWriteExecute=yes is safe: memoryd serves under the kernel's own form of it,
    /// prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) (Linux 6.3+; systemd uses seccomp to the same end).
    func testMemorydRunsWithMemoryDenyWriteExecute() throws {
        let python = try require("python3")
        let dir = TestPaths.makeTempDirectory("mdwe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "".write(toFile: dir + "/memoryd.toml", atomically: true, encoding: .utf8)
        let wrapper = """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(65, 1, 0, 0, 0) != 0 or libc.prctl(66, 0, 0, 0, 0) != 1:
                sys.exit(77)  # PR_SET_MDWE not supported by this kernel
            os.execv(sys.argv[1], sys.argv[1:])
            """
        try wrapper.write(toFile: dir + "/mdwe.py", atomically: true, encoding: .utf8)
        let log = dir + "/log"
        let p = try SpawnedProcess(
            python,
            [
                dir + "/mdwe.py", TestPaths.binary("memoryd"), "--config", dir + "/memoryd.toml",
                "--data-dir", dir + "/data", "--socket", dir + "/m.sock",
            ],
            environment: ["MEMORYD_EMBEDDING_DIMENSION": "4"], output: log)
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: dir + "/m.sock") && Date() < deadline {
            if let status = p.wait(timeout: 0) {
                if status == 77 { throw Requirement.unavailable("the kernel has no PR_SET_MDWE") }
                XCTFail(
                    "memoryd exited \(status) under MDWE: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                return
            }
            usleep(20_000)
        }
        let add = try memoryctl(
            ["add", "--user", "u", "--text", "w^x", "--embedding", "1,0,0,0"], socket: dir + "/m.sock")
        XCTAssertEqual(add.status, 0, "\(add)")
        XCTAssertEqual(
            try memoryctl(["search", "--user", "u", "--embedding", "1,0,0,0"], socket: dir + "/m.sock").status, 0)
        kill(p.pid, SIGTERM)
        XCTAssertEqual(p.wait(timeout: 30), 0, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    // MARK: - Peer credentials

    /// A daemon whose socket anyone may open (mode 0666 in a world-searchable directory), so that only
    /// the peer-credential check stands between uid 65534 and the data.
    func startOpenDaemon(_ env: [String: String]) throws -> (DaemonProcess, String) {
        let dir = TestPaths.makeTempDirectory("pc")
        chmod(dir, 0o755)
        // The client binary where uid 65534 can run it.
        let ctl = dir + "/memoryctl"
        try FileManager.default.copyItem(atPath: TestPaths.binary("memoryctl"), toPath: ctl)
        chmod(ctl, 0o755)
        var environment = ["MEMORYD_SOCKET_MODE": "0666", "MEMORYD_EMBEDDING_DIMENSION": "4"]
        for (k, v) in env { environment[k] = v }
        let daemon = DaemonProcess(environment: environment, directory: dir)
        try daemon.start()
        return (daemon, ctl)
    }

    func asNobody(_ ctl: String, _ args: [String], socket: String, groups: String? = nil) throws -> CommandResult {
        let setpriv = try require("setpriv")
        var flags = ["--reuid=65534", "--regid=65534"]
        flags += groups.map { ["--groups=\($0)"] } ?? ["--clear-groups"]
        return try runProcess(setpriv, flags + [ctl] + args + ["--socket", socket])
    }

    func testPeerCredentialsRefuseUnlistedUIDAndServeListedOnes() throws {
        try Requirement.require(getuid() == 0, "needs root to run a client as uid 65534")
        _ = try require("setpriv")

        var (daemon, ctl) = try startOpenDaemon(["MEMORYD_ALLOWED_UIDS": "0"])
        let refused = try asNobody(ctl, ["ping"], socket: daemon.socketPath)
        XCTAssertEqual(refused.status, 8, "\(refused)")
        XCTAssertTrue(refused.stderr.hasPrefix("error: PERMISSION_DENIED: "), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("permission denied: uid 65534"), refused.stderr)
        XCTAssertEqual(try memoryctl(["ping"], socket: daemon.socketPath).status, 0, "root is listed")
        usleep(100_000)
        let log = daemon.log()
        let refusal = try XCTUnwrap(log.lines.first { $0.contains("connection refused") }, log)
        XCTAssertTrue(
            refusal.contains("peer.uid=65534") && refusal.contains("peer.pid=") && refusal.contains("peer.gid=65534"),
            refusal)
        daemon.stop()
        daemon.removeDirectory()

        (daemon, ctl) = try startOpenDaemon(["MEMORYD_ALLOWED_UIDS": "0,65534"])
        let served = try asNobody(ctl, ["ping"], socket: daemon.socketPath)
        XCTAssertEqual(served.status, 0, "\(served)")
        daemon.stop()
        daemon.removeDirectory()

        // Groups: the primary gid, or a supplementary group (SO_PEERGROUPS).
        (daemon, ctl) = try startOpenDaemon(["MEMORYD_ALLOWED_UIDS": "0", "MEMORYD_ALLOWED_GIDS": "4242"])
        XCTAssertEqual(try asNobody(ctl, ["ping"], socket: daemon.socketPath).status, 8)
        let viaGroup = try asNobody(ctl, ["ping"], socket: daemon.socketPath, groups: "4242")
        XCTAssertEqual(viaGroup.status, 0, "\(viaGroup)")
        daemon.stop()
        daemon.removeDirectory()
    }

    func testAllowListReloadsOnSIGHUP() throws {
        try Requirement.require(getuid() == 0, "needs root to run a client as uid 65534")
        _ = try require("setpriv")
        let (daemon, ctl) = try startOpenDaemon([:])
        defer {
            daemon.stop()
            daemon.removeDirectory()
        }
        daemon.writeConfig("allowed_uids = [0]\n")
        daemon.signal(SIGHUP)
        try waitForLog(daemon, "configuration reloaded")
        XCTAssertEqual(try asNobody(ctl, ["ping"], socket: daemon.socketPath).status, 8)
        daemon.writeConfig("allowed_uids = [0, 65534]\n")
        daemon.signal(SIGHUP)
        try waitForLog(daemon, "configuration reloaded", count: 2)
        XCTAssertEqual(try asNobody(ctl, ["ping"], socket: daemon.socketPath).status, 0)
    }

    func waitForLog(_ daemon: DaemonProcess, _ text: String, count: Int = 1) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if daemon.log().components(separatedBy: text).count - 1 >= count { return }
            usleep(20_000)
        }
        throw DaemonError("\"\(text)\" not logged \(count) times:\n\(daemon.log())")
    }

    /// The socket's permissions alone (no allow-list): a user who may not open the socket gets
    /// PERMISSION_DENIED from connect(), exit 8.
    func testSocketPermissionsKeepOthersOut() throws {
        try Requirement.require(getuid() == 0, "needs root to run a client as uid 65534")
        let (daemon, ctl) = try startOpenDaemon(["MEMORYD_SOCKET_MODE": "0660"])
        defer {
            daemon.stop()
            daemon.removeDirectory()
        }
        let r = try asNobody(ctl, ["ping"], socket: daemon.socketPath)
        XCTAssertEqual(r.status, 8, "\(r)")
        XCTAssertTrue(r.stderr.hasPrefix("error: PERMISSION_DENIED: cannot connect to memoryd"), r.stderr)
    }

    // MARK: - Install

    func testInstallIntoARootIsIdempotentKeepsTheConfigAndUninstalls() throws {
        let root = TestPaths.makeTempDirectory("root")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let script = TestPaths.packageRoot + "/scripts/install"
        let from = TestPaths.binDirectory
        let install = try runProcess("/bin/bash", [script, "--root", root, "--from", from])
        XCTAssertEqual(install.status, 0, "\(install)")
        let files = [
            "usr/local/bin/memoryd", "usr/local/bin/memoryctl", "etc/systemd/system/memoryd.service",
            "etc/systemd/system/memoryd.socket", "etc/sysusers.d/memoryd.conf", "etc/tmpfiles.d/memoryd.conf",
            "etc/memoryd/memoryd.toml", "usr/local/share/doc/memoryd/operating.md",
            "usr/local/share/bash-completion/completions/memoryctl", "usr/local/share/zsh/site-functions/_memoryctl",
        ]
        for f in files { XCTAssertTrue(FileManager.default.fileExists(atPath: "\(root)/\(f)"), f) }
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: "\(root)/usr/local/bin/memoryctl"))
        XCTAssertEqual(try runProcess("\(root)/usr/local/bin/memoryctl", ["--version"]).stdout, "0.1.0\n")

        // The operator's config survives a reinstall (upgrade); the new sample lands beside it.
        try "log_level = \"debug\"\n".write(
            toFile: "\(root)/etc/memoryd/memoryd.toml", atomically: true, encoding: .utf8)
        let again = try runProcess("/bin/bash", [script, "--root", root, "--from", from])
        XCTAssertEqual(again.status, 0, "\(again)")
        XCTAssertEqual(
            try String(contentsOfFile: "\(root)/etc/memoryd/memoryd.toml", encoding: .utf8), "log_level = \"debug\"\n")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(root)/etc/memoryd/memoryd.toml.sample"))

        let uninstall = try runProcess("/bin/bash", [script, "--uninstall", "--root", root])
        XCTAssertEqual(uninstall.status, 0, "\(uninstall)")
        for f in files where f != "etc/memoryd/memoryd.toml" {
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(root)/\(f)"), "\(f) removed")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(root)/etc/memoryd/memoryd.toml"), "config kept")
        XCTAssertEqual(try runProcess("/bin/bash", [script, "--uninstall", "--purge", "--root", root]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(root)/etc/memoryd"))
        XCTAssertEqual(try runProcess("/bin/bash", [script, "--bogus"]).status, 64)
    }
}
