/// A TOML value of the subset memoryd's config uses.
public enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    case array([TOMLValue])
}

/// A small TOML reader for configuration files: `[table]` headers, `key = value` with basic and literal
/// strings, integers, floats, booleans and (possibly multi-line) arrays of those, and `#` comments.
/// Keys come back flattened: `[firestore]` + `project_id` → `firestore.project_id`.
public enum TOML {
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    public static func parse(_ text: String) throws(ParseError) -> [String: TOMLValue] {
        var out: [String: TOMLValue] = [:]
        var table = ""
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var n = 0
        while n < lines.count {
            let lineNo = n + 1
            var line = stripComment(lines[n]).trimming(" ").trimming("\t")
            line = line.trimming("\r")
            n += 1
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), !line.hasPrefix("[[") else {
                    throw ParseError(line: lineNo, message: "bad table header \(line)")
                }
                table = String(line.dropFirst().dropLast()).trimming(" ")
                guard !table.isEmpty else { throw ParseError(line: lineNo, message: "empty table name") }
                continue
            }
            guard let eq = line.firstIndex(of: "=") else {
                throw ParseError(line: lineNo, message: "expected key = value")
            }
            var key = String(line[..<eq]).trimming(" ")
            if key.hasPrefix("\"") && key.hasSuffix("\"") && key.count >= 2 { key = String(key.dropFirst().dropLast()) }
            guard !key.isEmpty else { throw ParseError(line: lineNo, message: "empty key") }
            var raw = String(line[line.index(after: eq)...]).trimming(" ")
            // Multi-line arrays: keep reading until the brackets balance.
            if raw.hasPrefix("[") {
                while bracketDepth(raw) > 0 && n < lines.count {
                    raw += " " + stripComment(lines[n]).trimming(" ")
                    n += 1
                }
            }
            let full = table.isEmpty ? key : table + "." + key
            guard out[full] == nil else { throw ParseError(line: lineNo, message: "duplicate key \(full)") }
            var p = ValueParser(chars: Array(raw), line: lineNo)
            let v = try p.value()
            p.skipSpace()
            guard p.i == p.chars.count else {
                throw ParseError(line: lineNo, message: "unexpected text after the value of \(full)")
            }
            out[full] = v
        }
        return out
    }

    private static func stripComment(_ s: String) -> String {
        var inBasic = false, inLiteral = false, escaped = false
        var out = ""
        for c in s {
            if escaped {
                escaped = false
                out.append(c)
                continue
            }
            if inBasic && c == "\\" {
                escaped = true
                out.append(c)
                continue
            }
            if c == "\"" && !inLiteral { inBasic.toggle() }
            if c == "'" && !inBasic { inLiteral.toggle() }
            if c == "#" && !inBasic && !inLiteral { break }
            out.append(c)
        }
        return out
    }

    private static func bracketDepth(_ s: String) -> Int {
        var d = 0, inBasic = false, inLiteral = false
        for c in s {
            if c == "\"" && !inLiteral { inBasic.toggle() }
            if c == "'" && !inBasic { inLiteral.toggle() }
            if inBasic || inLiteral { continue }
            if c == "[" { d += 1 }
            if c == "]" { d -= 1 }
        }
        return d
    }

    private struct ValueParser {
        let chars: [Character]
        let line: Int
        var i = 0

        init(chars: [Character], line: Int) {
            self.chars = chars
            self.line = line
        }

        mutating func skipSpace() { while i < chars.count, chars[i] == " " || chars[i] == "\t" { i += 1 } }

        func fail(_ m: String) -> ParseError { ParseError(line: line, message: m) }

        mutating func value() throws(ParseError) -> TOMLValue {
            skipSpace()
            guard i < chars.count else { throw fail("missing value") }
            switch chars[i] {
            case "\"":
                i += 1
                var s = ""
                while i < chars.count, chars[i] != "\"" {
                    if chars[i] == "\\" {
                        i += 1
                        guard i < chars.count else { break }
                        switch chars[i] {
                        case "n": s.append("\n")
                        case "t": s.append("\t")
                        case "\"": s.append("\"")
                        case "\\": s.append("\\")
                        default: throw fail("unsupported escape \\\(chars[i])")
                        }
                    } else {
                        s.append(chars[i])
                    }
                    i += 1
                }
                guard i < chars.count else { throw fail("unterminated string") }
                i += 1
                return .string(s)
            case "'":
                i += 1
                var s = ""
                while i < chars.count, chars[i] != "'" {
                    s.append(chars[i])
                    i += 1
                }
                guard i < chars.count else { throw fail("unterminated string") }
                i += 1
                return .string(s)
            case "[":
                i += 1
                var a: [TOMLValue] = []
                while true {
                    skipSpace()
                    guard i < chars.count else { throw fail("unterminated array") }
                    if chars[i] == "]" {
                        i += 1
                        return .array(a)
                    }
                    a.append(try value())
                    skipSpace()
                    guard i < chars.count else { throw fail("unterminated array") }
                    if chars[i] == "," { i += 1 }
                }
            default:
                var word = ""
                while i < chars.count, chars[i] != ",", chars[i] != "]", chars[i] != " ", chars[i] != "\t" {
                    word.append(chars[i])
                    i += 1
                }
                if word == "true" { return .bool(true) }
                if word == "false" { return .bool(false) }
                let digits = word.replacing("_", with: "")
                if digits.hasPrefix("0o"), let v = Int(digits.dropFirst(2), radix: 8) {
                    return .string(String(v, radix: 8))
                }
                if let v = Int(digits) { return .integer(v) }
                if let v = Double(digits) { return .float(v) }
                throw fail("cannot read value \(word)")
            }
        }
    }
}
