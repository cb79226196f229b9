import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Another process (python3's sqlite3) holding `BEGIN IMMEDIATE` on a sqlite database until released: a
/// write of memoryd's sqlite backend then waits for the lock, which is how tests get a call that is running
/// in a worker, without depending on speed. Reads go on (WAL).
public final class DatabaseLocker {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    /// Starts the locker and returns once it holds the lock.
    public init(database: String) throws {
        try Requirement.require(
            Requirement.which("python3") != nil, "python3 is not installed (apt-get install python3)")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            """
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
            c.execute("BEGIN IMMEDIATE")
            print("locked", flush=True)
            sys.stdin.readline()
            c.execute("ROLLBACK")
            print("released", flush=True)
            """,
            database,
        ]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        try expect("locked")
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Rolls back and ends the locker.
    public func release() throws {
        input.fileHandleForWriting.write(Data("go\n".utf8))
        try expect("released")
        process.waitUntilExit()
    }

    public var isHolding: Bool { process.isRunning }

    private func expect(_ line: String) throws {
        let fd = output.fileHandleForReading.fileDescriptor
        var got: [UInt8] = []
        while !got.contains(UInt8(ascii: "\n")) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 60_000) > 0 else { throw DaemonError("the locker did not say \(line)") }
            var buf = [UInt8](repeating: 0, count: 256)
            let n = read(fd, &buf, buf.count)
            guard n > 0 else { throw DaemonError("the locker exited before saying \(line)") }
            got += buf[0..<n]
        }
        let text = String(decoding: got, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text == line else { throw DaemonError("the locker said \(text), not \(line)") }
    }
}
