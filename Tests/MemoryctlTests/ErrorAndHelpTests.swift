import Foundation
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import XCTest

/// Exit codes of SPEC §3, error output, and help texts.
final class ErrorTests: MemoryctlTestCase {
    func testEachErrorTypeHasItsExitCodeAndOneLine() throws {
        let notFound = try expect(4, ["get", "mem_missing"])
        XCTAssertEqual(notFound.stderr, "error: NotFoundError: memory item \"mem_missing\" not found\n")

        try expect(0, ["add", "--id", "dup", "--user", "u", "--text", "first"])
        // Another item under a taken id (the same item again is a retry, which sqlite accepts).
        XCTAssertTrue(
            try expect(5, ["add", "--id", "dup", "--user", "u", "--text", "second"]).stderr.hasPrefix(
                "error: DuplicateError: "))

        let validation = try expect(3, ["add", "--user", "u", "--embedding", "1,2,3"])
        XCTAssertTrue(validation.stderr.hasPrefix("error: ValidationError: "), validation.stderr)
        XCTAssertTrue(validation.stderr.contains("3"), "names the wrong size: \(validation.stderr)")
        try expect(3, ["add", "--user", ""])  // user_id required: the daemon decides, not the parser
        try expect(3, ["get", "bad id!"])

        // --json: the error as one JSON object on stderr, nothing on stdout.
        let j = try expect(4, ["--json", "delete", "mem_missing"])
        XCTAssertEqual(j.stdout, "")
        let e = try XCTUnwrap(try? JSONValue.parse(j.stderr.trimmed), j.stderr)
        XCTAssertEqual(e["error"], .string("NotFoundError"))
        XCTAssertEqual(e["code"], .number(Double(StatusCode.notFound.rawValue)))
        XCTAssertNotNil(e["message"]?.stringValue)
    }

    func testUnreachableDaemonExits8ForEveryCommand() throws {
        let socket = daemon.directory + "/nobody-listens.sock"
        for args in [
            ["ping"], ["health"], ["get", "x"], ["add", "--user", "u"], ["cleanup-expired"],
            ["history", "--user", "u"], ["agent-data", "list", "--agent", "a"], ["export"],
        ] {
            let r = try memoryctl(args + ["--socket", socket])
            XCTAssertEqual(r.status, 8, "\(args)\n\(r)")
            XCTAssertTrue(r.stderr.hasPrefix("error: UNAVAILABLE: cannot connect to memoryd at \(socket)"), r.stderr)
        }
        let j = try memoryctl(["health", "--json"], socket: socket)
        XCTAssertEqual(j.status, 8)
        XCTAssertEqual((try? JSONValue.parse(j.stderr.trimmed))?["error"], .string("UNAVAILABLE"))
        // A monitoring check reading stdout still gets one document (the Python client's health_check form).
        XCTAssertEqual(j.json?["status"], .string("unhealthy"), j.stdout)
        XCTAssertEqual(j.json?["details"]?["memoryd_reachable"], .bool(false), j.stdout)

        // A daemon that stops answering: --timeout bounds the wait (exit 8, DEADLINE_EXCEEDED or UNAVAILABLE).
        daemon.signal(SIGSTOP)
        defer { daemon.signal(SIGCONT) }
        // memoryctl returns while the daemon is still stopped: --timeout, not the daemon, ended the wait.
        let slow = try ctl("health", "--timeout", "0.2")
        XCTAssertEqual(slow.status, 8, "\(slow)")
    }

    func testUsageErrorsExit64() throws {
        for args in [
            ["add"], ["add", "--user"], ["get"], ["bogus"], ["ping", "--nope"], ["ping", "--timeout", "0"],
            ["ping", "--timeout", "x"], ["history", "--user", "u", "--limit", "-1"],
            ["add", "--user", "u", "--metadata", "novalue"], ["add", "--user", "u", "--expires-in", "-5"],
            ["search", "--user", "u", "--embedding", "1", "--top-k", "many"], ["import"],
        ] {
            let r = try ctl(args: args)
            XCTAssertEqual(r.status, 64, "\(args)\n\(r)")
            XCTAssertEqual(r.stdout, "", "\(args)")
            XCTAssertFalse(r.stderr.isEmpty, "\(args)")
        }
        // The message names what is wrong, not what the parser tripped over first.
        for (args, message) in [
            (["--socket", "/x", "bogus"], "unknown command 'bogus'"), (["bogus"], "unknown command 'bogus'"),
            (["ping", "--timeout", "-1"], "--timeout must be more than 0"),
            (["--timeout", "-1", "ping"], "--timeout must be more than 0"),
            (["history", "--user", "u", "--limit", "-1"], "'-1' is invalid for '--limit"),
        ] {
            let r = try ctl(args: args)
            XCTAssertEqual(r.status, 64, "\(args)\n\(r)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        // A negative number is a value, not an option: euclidean scores are negative.
        try expect(
            0, ["search", "--user", "u", "--embedding", "1,0,0,0", "--measure", "euclidean", "--min-score", "-0.5"])
    }
}

/// Help texts: every command explains itself with an example; one is checked whole.
final class HelpTests: XCTestCase {
    static let commands: [[String]] = [
        ["ping"], ["health"], ["add"], ["import"], ["export"], ["get"], ["delete"], ["history"], ["search"],
        ["agent-data"],
        ["agent-data", "add"], ["agent-data", "get"], ["agent-data", "list"], ["cleanup-expired"],
    ]

    func testEveryCommandsHelpHasAnExample() throws {
        for command in Self.commands {
            let r = try memoryctl(command + ["--help"])
            XCTAssertEqual(r.status, 0, "\(command)\n\(r)")
            XCTAssertTrue(
                r.stdout.contains("Example:\n  memoryctl \(command.joined(separator: " "))"),
                "\(command) --help has an example of itself:\n\(r.stdout)")
            if command != ["agent-data"] {
                XCTAssertTrue(
                    r.stdout.contains("--socket <path>") && r.stdout.contains("--json")
                        && r.stdout.contains("--timeout <seconds>"),
                    "\(command) lists the global options")
            }
        }
        let root = try memoryctl(["--help"])
        for command in Self.commands where command.count == 1 {
            XCTAssertTrue(root.stdout.contains("\n  \(command[0]) "), "root help lists \(command[0])")
        }
        XCTAssertEqual(try memoryctl(["help", "search"]).stdout, try memoryctl(["search", "--help"]).stdout)
    }

    func testPingHelpWhole() throws {
        let r = try memoryctl(["ping", "--help"], environment: ["COLUMNS": "100"])
        XCTAssertEqual(
            r.stdout,
            """
            OVERVIEW: Check that memoryd answers; print its version and the round-trip time.

            Connects, sends one Ping and prints the server's version, uptime and the round trip.

            Example:
              memoryctl ping
              memoryd 0.1.0 on /run/memoryd/memoryd.sock: round trip 0.183 ms, up 2h 5m

            USAGE: memoryctl ping [--socket <path>] [--json] [--timeout <seconds>]

            GLOBAL OPTIONS:
              --socket <path>         memoryd's socket (default: $MEMORYD_SOCKET, else
                                      /run/memoryd/memoryd.sock).
              --json                  Print one JSON document on stdout (errors as JSON on stderr).
              --timeout <seconds>     Deadline of each call in seconds (default: the daemon's
                                      default_timeout_ms).

            OPTIONS:
              --version               Show the version.
              -h, --help              Show help information.


            """)
    }

    /// Piped (no terminal, 80 columns), an example must not wrap mid-line, and no option shows the parser's
    /// own "(default: 0)" next to the real default its help names.
    func testHelpExamplesDoNotWrapAndDefaultsAreStatedOnce() throws {
        for command in Self.commands + [[]] {
            let help = try memoryctl(command + ["--help"]).stdout
            var inExample = false
            for line in help.lines {
                if line.hasPrefix("Example:") || line.hasPrefix("Shell completions") {
                    inExample = true
                } else if line.hasPrefix("USAGE:") || line.isEmpty {
                    inExample = false
                } else if inExample {
                    XCTAssertTrue(line.hasPrefix("  "), "\(command): a wrapped example line: \(line)\n\(help)")
                }
            }
            XCTAssertFalse(help.contains("(default: 0)"), "\(command)\n\(help)")
            XCTAssertFalse(help.contains("(default: )"), "\(command)\n\(help)")
        }
    }

    func testCleanupExpiredHelpWhole() throws {
        let r = try memoryctl(["cleanup-expired", "--help"], environment: ["COLUMNS": "100"])
        XCTAssertEqual(
            r.stdout,
            """
            OVERVIEW: Delete the memory items and agent data whose expiration has passed; print how many.

            Expired items and agent data are already invisible to every read; this frees their storage now
            instead of waiting for the backend's own cleanup (Firestore's TTL policy). The count covers both.

            Example:
              memoryctl cleanup-expired
              deleted 12 expired entries (memory items and agent data)

            USAGE: memoryctl cleanup-expired [--socket <path>] [--json] [--timeout <seconds>]

            GLOBAL OPTIONS:
              --socket <path>         memoryd's socket (default: $MEMORYD_SOCKET, else
                                      /run/memoryd/memoryd.sock).
              --json                  Print one JSON document on stdout (errors as JSON on stderr).
              --timeout <seconds>     Deadline of each call in seconds (default: the daemon's
                                      default_timeout_ms).

            OPTIONS:
              --version               Show the version.
              -h, --help              Show help information.


            """)
    }

    func testVersionAndCompletionScripts() throws {
        XCTAssertEqual(try memoryctl(["--version"]).stdout, "0.1.0\n")
        for shell in ["bash", "zsh", "fish"] {
            let r = try memoryctl(["--generate-completion-script", shell])
            XCTAssertEqual(r.status, 0, shell)
            XCTAssertTrue(r.stdout.contains("memoryctl") && r.stdout.contains("agent-data"), shell)
        }
    }
}

/// What a real sqlite daemon does not say on demand, from a fake one.
final class FakeDaemonTests: XCTestCase {
    func testEveryStatusMapsToItsExitCode() throws {
        let fake = try FakeDaemon(health: "healthy")
        // err-<gRPC code>-<ErrorType>
        let cases: [(String, Int32, String)] = [
            ("err-13-1", 1, "StorageError"), ("err-14-2", 6, "ConnectionError"), ("err-3-3", 3, "ValidationError"),
            ("err-10-4", 7, "OperationError"), ("err-5-5", 4, "NotFoundError"), ("err-6-6", 5, "DuplicateError"),
            ("err-4-0", 8, "DEADLINE_EXCEEDED"), ("err-8-0", 8, "RESOURCE_EXHAUSTED"),
            ("err-7-0", 8, "PERMISSION_DENIED"),
            ("err-14-0", 8, "UNAVAILABLE"), ("err-12-0", 8, "UNIMPLEMENTED"),
        ]
        for (id, status, name) in cases {
            let r = try memoryctl(["get", id], socket: fake.socketPath)
            XCTAssertEqual(r.status, status, "\(id)\n\(r)")
            XCTAssertEqual(r.stderr, "error: \(name): provoked \(id)\n")
            let j = try memoryctl(["get", id, "--json"], socket: fake.socketPath)
            XCTAssertEqual(j.status, status)
            XCTAssertEqual((try? JSONValue.parse(j.stderr.trimmed))?["error"], .string(name), j.stderr)
        }
        let ping = try memoryctl(["ping"], socket: fake.socketPath)
        XCTAssertEqual(ping.status, 8)
        XCTAssertTrue(ping.stderr.hasPrefix("error: UNIMPLEMENTED: "), ping.stderr)
    }

    func testHealthDegradedExits1AndUnhealthyExits2() throws {
        let degraded = try FakeDaemon(health: "degraded")
        let r = try memoryctl(["health"], socket: degraded.socketPath)
        XCTAssertEqual(r.status, 1, "\(r)")
        XCTAssertEqual(
            r.stdout,
            """
            memoryd is DEGRADED: circuit breaker half-open after 5 failures (firestore backend, memoryd 0.1.0, up 42s)
              backend        firestore
              version        0.1.0
              uptime_s       42 (42s)
              circuit_state  half_open
              queue_depth    0

            """)
        let j = try memoryctl(["health", "--json"], socket: degraded.socketPath)
        XCTAssertEqual(j.status, 1)
        XCTAssertEqual(j.json?["status"], .string("degraded"))
        XCTAssertEqual(j.json?["firestore"], .bool(true))
        XCTAssertEqual(j.json?["details"]?["reason"], .string("circuit breaker half-open after 5 failures"))

        let unhealthy = try FakeDaemon(health: "unhealthy")
        let u = try memoryctl(["health"], socket: unhealthy.socketPath)
        XCTAssertEqual(u.status, 2, "\(u)")
        XCTAssertTrue(u.stdout.hasPrefix("memoryd is UNHEALTHY: circuit breaker"), u.stdout)
    }
}
