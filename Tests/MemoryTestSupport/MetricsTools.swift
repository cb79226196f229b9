import Foundation
import MemoryPosix
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The samples of a Prometheus text exposition, keyed `name{label="value",...}` as written (labels in the
/// order the exposition gives them). A small reader for tests; the real parsers are promtool and
/// prometheus_client (``MetricsTools``).
public struct MetricSamples {
    public var values: [String: Double] = [:]

    public init(_ text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else {
                continue
            }
            values[String(line[..<space])] = v
        }
    }

    public subscript(_ key: String) -> Double? { values[key] }

    /// The sum over every series of `name` whose key contains each of `matching` (e.g. `method="Ping"`).
    public func sum(_ name: String, _ matching: String...) -> Double {
        values.filter { k, _ in
            (k == name || k.hasPrefix(name + "{")) && matching.allSatisfy { k.contains($0) }
        }.values.reduce(0, +)
    }
}

/// An HTTP response read off a raw socket.
public struct HTTPReply {
    public var status: Int
    public var headers: [String: String]
    public var body: String
}

public enum MetricsTools {
    /// Connects to `unix:/path` or `host:port` (IPv4); returns the socket.
    public static func connect(_ address: String) throws -> Int32 {
        if address.hasPrefix("unix:") {
            switch UnixSocket.connect(String(address.dropFirst(5))) {
            case .success(let fd): return fd
            case .failure(let e): throw DaemonError("connect \(address): \(e)")
            }
        }
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw DaemonError("bad address \(address)")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        inet_pton(AF_INET, String(address[..<colon]), &a.sin_addr)
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw DaemonError("connect \(address): \(String(cString: strerror(e)))")
        }
        return fd
    }

    /// Sends `request` as is and reads until the server closes (or `timeout` seconds pass).
    public static func exchange(_ address: String, _ request: [UInt8], timeout: Double = 20) throws -> [UInt8] {
        let fd = try connect(address)
        defer { close(fd) }
        if !request.isEmpty { try request.withUnsafeBytes { try writeAll(fd, $0, socket: true) } }
        return try readUntilClosed(fd, timeout: timeout)
    }

    /// Reads until EOF; throws when `timeout` seconds pass first.
    public static func readUntilClosed(_ fd: Int32, timeout: Double) throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = Int32(max(0, deadline.timeIntervalSinceNow) * 1000)
            if poll(&p, 1, left) == 0 { throw DaemonError("the server did not close within \(timeout) s") }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return out }  // EOF or reset: closed either way
            out.append(contentsOf: buf[0..<n])
        }
    }

    /// `GET path` with `Connection: close`.
    public static func get(_ address: String, _ path: String = "/metrics", method: String = "GET") throws -> HTTPReply {
        let raw = try exchange(
            address, Array("\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8))
        return try parse(raw)
    }

    public static func parse(_ raw: [UInt8]) throws -> HTTPReply {
        let text = String(decoding: raw, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else {
            throw DaemonError("not an HTTP response: \(text.prefix(200))")
        }
        let head = text[..<end.lowerBound].components(separatedBy: "\r\n")
        let parts = head[0].split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw DaemonError("bad status line \(head[0])") }
        var headers: [String: String] = [:]
        for h in head.dropFirst() {
            if let colon = h.firstIndex(of: ":") {
                headers[h[..<colon].lowercased()] = h[h.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return HTTPReply(status: status, headers: headers, body: String(text[end.upperBound...]))
    }

    static var underCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Skips (fails under CI=true) when `tool` is not on PATH.
    public static func require(_ tool: String, _ why: String) throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        if underCI { XCTFail("\(tool) is not installed (\(why)); CI=true requires it (scripts/install-deps)") }
        throw XCTSkip("\(tool) is not installed (\(why))")
    }

    /// Runs `executable` with `stdin`; returns its exit status and its stdout and stderr together.
    public static func run(_ executable: String, _ arguments: [String], stdin: String = "") throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = output
        try p.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// `promtool check metrics`: nil when the text passes, else promtool's complaint.
    public static func promtoolProblems(_ text: String) throws -> String? {
        let promtool = try require("promtool", "Debian package prometheus")
        let (status, out) = try run(promtool, ["check", "metrics"], stdin: text)
        return status == 0 ? nil : out
    }

    /// Parses `text` with the Python prometheus_client parser (from PyPI, into a venv under .build made on
    /// first use) and returns every sample as `name{labels sorted by name}` → value.
    public static func parseWithPrometheusClient(_ text: String) throws -> [String: Double] {
        let venv = TestPaths.packageRoot + "/.build/test-venvs/prometheus-client"
        let python = venv + "/bin/python"
        if !FileManager.default.fileExists(atPath: python) {
            let python3 = try require("python3", "for prometheus_client")
            var (status, out) = try run(python3, ["-m", "venv", venv])
            if status == 0 {
                (status, out) = try run(
                    python, ["-m", "pip", "install", "-q", "--disable-pip-version-check", "prometheus_client"])
            }
            if status != 0 {
                try? FileManager.default.removeItem(atPath: venv)
                if underCI { XCTFail("cannot install prometheus_client: \(out)") }
                throw XCTSkip("cannot install prometheus_client from PyPI: \(out.suffix(300))")
            }
        }
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = {}
            for family in text_string_to_metric_families(sys.stdin.read()):
                for s in family.samples:
                    labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                    out[s.name + ("{" + labels + "}" if labels else "")] = s.value
            print(json.dumps(out))
            """
        let (status, out) = try run(python, ["-c", script], stdin: text)
        guard status == 0, let data = out.data(using: .utf8),
            let json = try JSONSerialization.jsonObject(with: data) as? [String: Double]
        else { throw DaemonError("prometheus_client could not parse the text:\n\(out.suffix(2000))") }
        return json
    }
}
