import Foundation
import MemoryClient
import MemoryPosix

#if canImport(Glibc)
import Glibc
#endif

/// Paths of the package and of the binaries `swift build` made.
public enum TestPaths {
    /// The package root, found from this file's path.
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The directory of the test bundle's sibling executables (`.build/debug` or another scratch path).
    public static let binDirectory: String = {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // .../debug/memorydPackageTests.xctest (a file on Linux)
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("memoryd").path), dir.path != "/" {
            dir.deleteLastPathComponent()
        }
        if dir.path == "/" { return packageRoot + "/.build/debug" }
        return dir.path
    }()

    public static func binary(_ name: String) -> String { binDirectory + "/" + name }

    /// A fresh short directory under /tmp (socket paths must stay under 108 bytes).
    public static func makeTempDirectory(_ prefix: String = "md") -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(p != nil, "mkdtemp failed")
        return String(cString: p!)
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A real memoryd process on a private socket and data directory. Readiness is systemd's: the daemon's
/// READY=1 on a NOTIFY_SOCKET the test owns, never a sleep.
public final class DaemonProcess {
    public let directory: String
    public let socketPath: String
    public let dataDir: String
    public let logPath: String
    public var arguments: [String]
    public var environment: [String: String]
    public private(set) var process: Process?
    public private(set) var notifications: [String] = []
    private var notifyFD: Int32 = -1
    private let notifyPath: String

    /// - Parameters:
    ///   - arguments: extra flags after `--socket` and `--data-dir`.
    ///   - environment: variables added to a clean environment.
    public init(arguments: [String] = [], environment: [String: String] = [:], directory: String? = nil) {
        self.directory = directory ?? TestPaths.makeTempDirectory()
        self.socketPath = self.directory + "/memoryd.sock"
        self.dataDir = self.directory + "/data"
        self.logPath = self.directory + "/memoryd.log"
        self.notifyPath = self.directory + "/notify.sock"
        self.arguments = arguments
        self.environment = environment
    }

    deinit {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        if notifyFD >= 0 { Glibc.close(notifyFD) }
    }

    /// Starts memoryd and waits for READY=1 (up to `timeout` seconds). Throws with the daemon's log when it
    /// exits first.
    public func start(timeout: Double = 60) throws {
        try openNotifySocket()
        notifications = []
        if !FileManager.default.fileExists(atPath: configPath) { writeConfig("# written by the test\n") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestPaths.binary("memoryd"))
        p.arguments = ["--socket", socketPath, "--data-dir", dataDir, "--config", directory + "/none.toml"] + arguments
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "NOTIFY_SOCKET": notifyPath]
        for (k, v) in environment { env[k] = v }
        p.environment = env
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let logHandle = FileHandle(forWritingAtPath: logPath)!
        logHandle.seekToEndOfFile()
        p.standardError = logHandle
        p.standardOutput = logHandle
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let msg = receiveNotification(timeoutMs: 100) {
                notifications.append(msg)
                if msg.split(separator: "\n").contains("READY=1") { return }
            }
            if !p.isRunning {
                throw DaemonError(
                    "memoryd exited with status \(p.terminationStatus) before READY=1:\n\(log(tail: 4000))")
            }
        }
        throw DaemonError("memoryd did not become ready within \(timeout) s:\n\(log(tail: 4000))")
    }

    /// Collects the notifications that arrived since, waiting up to `timeoutMs` for the first.
    public func collectNotifications(timeoutMs: Int = 100) -> [String] {
        var out: [String] = []
        var wait = timeoutMs
        while let m = receiveNotification(timeoutMs: wait) {
            out.append(m)
            wait = 0
        }
        notifications += out
        return out
    }

    /// Fills the queue of the NOTIFY_SOCKET the daemon was given (read only until READY=1 and in
    /// ``collectNotifications(timeoutMs:)``), as a systemd that does not read would; returns the datagrams
    /// it took (the kernel's `net.unix.max_dgram_qlen`, 10 by default).
    @discardableResult
    public func fillNotifySocket() -> Int {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { Glibc.close(fd) }
        var sent = 0
        while sent < 100_000,
            UnixSocket.withAddress(notifyPath, { sendto(fd, "STATUS=filler", 13, Int32(MSG_DONTWAIT), $0, $1) == 13 })
                == true
        {
            sent += 1
        }
        return sent
    }

    /// The config file path the daemon was given (absent unless written with `writeConfig`).
    public var configPath: String { directory + "/none.toml" }

    public func writeConfig(_ toml: String) {
        _ = FileManager.default.createFile(atPath: configPath, contents: Data(toml.utf8))
    }

    /// Sends `signal` and waits for the exit; returns the exit status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Double = 30) -> Int32 {
        guard let p = process else { return -1 }
        if p.isRunning { kill(p.processIdentifier, signal) }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        process = nil
        return p.terminationStatus
    }

    public func kill9() { _ = stop(signal: SIGKILL) }

    /// Waits up to `timeout` seconds for the process to exit by itself (no signal sent): its exit status, or
    /// nil when it still runs.
    public func waitForExit(timeout: Double) -> Int32? {
        guard let p = process else { return nil }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        guard !p.isRunning else { return nil }
        p.waitUntilExit()
        process = nil
        return p.terminationStatus
    }

    public func signal(_ sig: Int32) {
        if let p = process, p.isRunning { kill(p.processIdentifier, sig) }
    }

    public var pid: Int32 { process?.processIdentifier ?? -1 }
    public var isRunning: Bool { process?.isRunning ?? false }

    public func client(timeoutMs: UInt64 = 0) throws -> MemoryClient {
        try MemoryClient(socketPath: socketPath, timeoutMs: timeoutMs)
    }

    public func connection() throws -> ClientConnection {
        try ClientConnection(socketPath: socketPath)
    }

    public func log(tail: Int = 100_000) -> String {
        let s = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return String(s.suffix(tail))
    }

    public func removeDirectory() { try? FileManager.default.removeItem(atPath: directory) }

    // MARK: - NOTIFY_SOCKET

    private func openNotifySocket() throws {
        if notifyFD >= 0 { return }
        unlink(notifyPath)
        notifyFD = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let rc = UnixSocket.withAddress(notifyPath) { bind(notifyFD, $0, $1) }
        guard rc == 0 else { throw DaemonError("bind \(notifyPath): \(String(cString: strerror(errno)))") }
    }

    private func receiveNotification(timeoutMs: Int) -> String? {
        var p = pollfd(fd: notifyFD, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeoutMs)) > 0 else { return nil }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = recv(notifyFD, &buf, buf.count, 0)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }
}
