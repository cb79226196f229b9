import Foundation
import XCTest

/// What a test needs from the machine (a tool, root, a kernel feature). Outside CI a missing one skips the
/// test and says why; under `CI=true` it fails the test naming what is missing, so that CI never reports
/// green for a test that did not run.
public enum Requirement {
    /// True when the suite runs under CI (`CI=true`).
    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// A test under CI whose requirement is missing.
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    /// The error to throw when `what` is missing: a skip outside CI, a failure naming it under CI.
    /// - Parameter what: what is missing and how to get it, e.g. "python3 is not installed".
    public static func unavailable(_ what: String) -> Error {
        if isCI { return Missing(description: "\(what), and CI=true requires it") }
        print("skipping: \(what)")
        return XCTSkip(what)
    }

    /// Throws ``unavailable(_:)`` unless `condition` holds.
    public static func require(_ condition: Bool, _ what: @autoclosure () -> String) throws {
        if !condition { throw unavailable(what()) }
    }

    /// The path of `tool` on `$PATH`, or nil.
    public static func which(_ tool: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }
}

/// Figures of a running process, read from `/proc`.
public enum ProcessFigures {
    /// The resident set size of `pid` in KiB (`VmRSS` in `/proc/PID/status`), nil when it cannot be read.
    public static func rssKiB(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }
}
