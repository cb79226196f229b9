import Foundation
import MemoryUtilities
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The real Firestore emulator (`gcloud emulators firestore start`), started once per test process on a
/// free port, in its own process group so that stopping it also stops the java process gcloud spawns.
public final class FirestoreEmulator: @unchecked Sendable {
    public static let shared = FirestoreEmulator()

    public let port: Int
    private var process: Process?
    private var pidFile = ""
    private let lock = NSLock()

    public var hostPort: String { "127.0.0.1:\(port)" }

    private init() { port = freeTCPPort() }

    /// The gcloud binary, or nil when the Cloud SDK is not installed.
    public static var gcloudPath: String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let p = "\(dir)/gcloud"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Starts the emulator unless it runs. Skips the test when it is not installed, except under CI=true (then
    /// the test fails naming it); an emulator that is installed but does not start fails the test.
    public func ensureRunning() throws {
        lock.lock()
        defer { lock.unlock() }
        if let process, process.isRunning, isServing() { return }
        guard let gcloud = Self.gcloudPath else {
            throw Requirement.unavailable(
                "the Firestore emulator (gcloud) is not installed (scripts/install-deps installs it)")
        }
        let process = Process()
        // The shell starts gcloud (which makes itself a process group leader; java runs in that group),
        // writes its pid for stop(), and is a watchdog: when this test process is gone, even killed, it kills
        // the group.
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("firestore-emulator-\(port).pid")
            .path
        try? FileManager.default.removeItem(atPath: pidFile)
        let script =
            "\"$2\" emulators firestore start --host-port=\"$3\" --quiet & child=$!; echo $child > \"$4\"; "
            + "while kill -0 \"$1\" 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; "
            + "kill -KILL -- -$child 2>/dev/null || kill -KILL $child 2>/dev/null"
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script, "sh", String(getpid()), gcloud, hostPort, pidFile]
        self.pidFile = pidFile
        self.process = process
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("firestore-emulator-\(port).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        Self.registerExitHook()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if isServing() { return }
            if !process.isRunning { break }
            usleep(100_000)
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        stopLocked()
        throw DaemonError("the Firestore emulator did not start on \(hostPort):\n\(text.suffix(2000))")
    }

    /// Kills the emulator's whole process group and waits until the port is closed.
    public func stop() {
        lock.lock()
        defer { lock.unlock() }
        stopLocked()
    }

    private func stopLocked() {
        guard let process else { return }
        if let text = TextFile.read(pidFile), let child = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
            child > 0
        {
            kill(-child, SIGKILL)  // gcloud's process group: gcloud, the launcher script and java
            kill(child, SIGKILL)
        }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        self.process = nil
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, isServing() { usleep(50_000) }
    }

    nonisolated(unsafe) private static var hookRegistered = false  // guarded by `lock`
    private static func registerExitHook() {
        guard !hookRegistered else { return }
        hookRegistered = true
        atexit { FirestoreEmulator.shared.stop() }
        XCTestObservationCenter.shared.addTestObserver(BundleEndObserver())
    }

    /// True when the emulator answers HTTP on its port (its root answers "Ok").
    public func isServing() -> Bool {
        httpStatus(port: port, path: "/") == 200
    }
}

/// The status of a plain HTTP/1.0 GET on 127.0.0.1 (nil when nothing answers within half a second).
public func httpStatus(port: Int, path: String) -> Int? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var tv = timeval(tv_sec: 0, tv_usec: 500_000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard rc == 0 else { return nil }
    let req = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
    guard req.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == req.count else {
        return nil
    }
    var buf = [UInt8](repeating: 0, count: 64)
    let n = recv(fd, &buf, buf.count, 0)
    guard n >= 12 else { return nil }
    let line = String(decoding: buf[0..<n], as: UTF8.self)
    let parts = line.split(separator: " ")
    return parts.count >= 2 ? Int(parts[1]) : nil
}

/// Stops the emulator when the test bundle ends.
private final class BundleEndObserver: NSObject, XCTestObservation {
    func testBundleDidFinish(_ testBundle: Bundle) { FirestoreEmulator.shared.stop() }
}

/// A TCP port nobody listens on right now.
public func freeTCPPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
    }
    _ = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Established TCP connections from this host to `port` (client side), read from /proc/net/tcp{,6}.
public func establishedConnections(toPort port: Int) -> Int {
    var count = 0
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = TextFile.read(file) else { continue }  // procfs: read to the end, sizes are 0
        for line in text.split(separator: "\n").dropFirst() {
            let cols = line.split(separator: " ")
            guard cols.count > 3 else { continue }
            let remote = cols[2].split(separator: ":")
            guard remote.count == 2, let rport = Int(remote[1], radix: 16), cols[3] == "01" else { continue }
            if rport == port { count += 1 }
        }
    }
    return count
}
