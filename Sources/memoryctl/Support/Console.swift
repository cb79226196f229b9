import ArgumentParser
import MemoryDomain
import MemoryPosix
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// Where a command's output goes: results on stdout, errors and progress on stderr. With `--json` a
/// command prints exactly one JSON document on stdout.
struct Console {
    let json: Bool

    func out(_ text: String) { Self.write(1, text + "\n") }
    func err(_ text: String) { Self.write(2, text + "\n") }

    /// The one JSON document of a `--json` run.
    func document(_ value: JSONValue) { out(Self.pretty(value)) }

    /// Indented JSON with sorted keys; arrays of scalars (embeddings) stay on one line.
    static func pretty(_ value: JSONValue, level: Int = 0) -> String {
        let indent = String(repeating: "  ", count: level + 1)
        let close = String(repeating: "  ", count: level)
        switch value {
        case .array(let a) where !a.isEmpty && a.contains(where: { $0.arrayValue != nil || $0.objectValue != nil }):
            return "[\n" + a.map { indent + pretty($0, level: level + 1) }.joined(separator: ",\n") + "\n" + close + "]"
        case .array(let a):
            return "[" + a.map { $0.serialized() }.joined(separator: ", ") + "]"
        case .object(let o) where !o.isEmpty:
            return "{\n"
                + o.keys.sorted().map { k in
                    indent + JSONValue.string(k).serialized() + ": " + pretty(o[k]!, level: level + 1)
                }.joined(separator: ",\n") + "\n" + close + "}"
        default:
            return value.serialized()
        }
    }

    /// True when stderr is a terminal (progress is shown only then).
    var stderrIsTerminal: Bool { isatty(2) == 1 }

    /// Writes all of `text`, retrying short writes and EINTR. Output to a closed pipe is dropped.
    static func write(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { try? writeAll(fd, $0) }
    }

    // MARK: - Failures

    /// `error: <ErrorName>: <message>`, or with `--json` `{"error": ..., "code": N, "message": ...}`,
    /// on stderr. `code` is the gRPC status code.
    func report(_ error: MemoryError) {
        if json {
            err(
                JSONValue.object([
                    "error": .string(error.name), "code": .number(Double(error.code.rawValue)),
                    "message": .string(error.message),
                ]).serialized())
        } else {
            err("error: \(error.name): \(error.message)")
        }
    }

    func report(_ failure: UsageFailure) {
        if json {
            err(
                JSONValue.object([
                    "error": .string("UsageError"), "code": .number(Double(StatusCode.invalidArgument.rawValue)),
                    "message": .string(failure.message),
                ]).serialized())
        } else {
            err("error: \(failure.message)")
        }
    }
}

/// Bad input found while running (an unreadable file, say): exit 64 like a parse error.
struct UsageFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// The exit codes of SPEC §3.
enum ExitStatus {
    static let usage: Int32 = 64
    static let callFailed: Int32 = 8

    static func code(for error: MemoryError) -> Int32 {
        switch error.type {
        case .storage: 1
        case .validation: 3
        case .notFound: 4
        case .duplicate: 5
        case .connection: 6
        case .operation: 7
        case .unspecified: callFailed
        }
    }
}

extension GlobalOptions {
    /// Runs a command's body: a `MemoryError` becomes one line on stderr and its SPEC §3 exit code, a
    /// `UsageFailure` exit 64.
    func run(_ body: (Console) throws -> Void) throws {
        let console = Console(json: json)
        do {
            try body(console)
        } catch let error as MemoryError {
            console.report(error)
            throw ExitCode(ExitStatus.code(for: error))
        } catch let failure as UsageFailure {
            console.report(failure)
            throw ExitCode(ExitStatus.usage)
        }
    }
}
