/// The fenced code blocks of a Markdown document and what the docs harness does with each.
///
/// The convention (docs/architecture.md, "Docs that run"):
/// - ```` ```sh ```` / ```` ```bash ````: commands a reader runs, run in order in one shell per document
///   (`set -e`: a failing command fails the document); their output is not compared.
/// - ```` ```console ````: `$ command` lines with the output the reader sees below each; commands must exit 0
///   (show a failure with `; echo "exit $?"`), output is compared (see ``Transcript``).
/// - ```` ```python ````: a self-contained program, run with the client's venv; it must exit 0.
/// - ```` ```text ```` (or `toml`, `yaml`, `json`, `ini`): an illustration (a diagram, a dump, a log, a
///   configuration excerpt); not run.
/// - `<!-- no-run: reason -->` (or `<!-- no-run -->`) on the line before a block: not run, on purpose.
/// - `<!-- run: firestore -->` before a block: it needs the Firestore emulator; run when firestore is tested.
/// - Any other block (no language, another language) is an error: say what it is.
struct DocBlock: CustomStringConvertible {
    enum Kind: Equatable {
        case shell, console, python, illustration
        case skipped(reason: String)
        case unmarked(info: String)
    }

    var file: String
    /// 1-based line of the opening fence.
    var line: Int
    var info: String
    var text: String
    var kind: Kind
    var needsFirestore = false

    var description: String { "\(file):\(line) (```\(info))" }
    var isRunnable: Bool { kind == .shell || kind == .console || kind == .python }

    static let shellLanguages: Set<String> = ["sh", "bash", "shell"]
    /// Blocks a reader reads or copies into a file, never runs: illustrations and configuration excerpts.
    static let illustrationLanguages: Set<String> = ["text", "toml", "yaml", "json", "ini"]

    /// The fenced blocks of `markdown`, each with the directive comment on the line before it.
    static func parse(_ markdown: String, file: String) -> [DocBlock] {
        let lines = markdown.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var blocks: [DocBlock] = []
        var i = 0
        while i < lines.count {
            let line = lines[i]
            let indent = line.prefix { $0 == " " }.count
            let rest = line.dropFirst(indent)
            guard indent < 4, rest.hasPrefix("```") || rest.hasPrefix("~~~") else {
                i += 1
                continue
            }
            let fenceChar = rest.first!
            let fence = String(rest.prefix { $0 == fenceChar })
            let info = rest.dropFirst(fence.count).split(separator: " ").first.map(String.init) ?? ""
            var body: [String] = []
            var j = i + 1
            while j < lines.count {
                let l = lines[j]
                let t = l.drop { $0 == " " }
                if t.hasPrefix(fence) && t.allSatisfy({ $0 == fenceChar || $0 == " " }) { break }
                // Content lines lose the fence's indentation (a block inside a list item).
                var stripped = Substring(l)
                var n = 0
                while n < indent, stripped.first == " " {
                    stripped = stripped.dropFirst()
                    n += 1
                }
                body.append(String(stripped))
                j += 1
            }
            var directives: [String] = []
            var k = i - 1
            while k >= 0, lines[k].trimmingCharacters(in: .whitespaces).hasPrefix("<!--") {
                directives.append(lines[k].trimmingCharacters(in: .whitespaces))
                k -= 1
            }
            var block = DocBlock(
                file: file, line: i + 1, info: info, text: body.joined(separator: "\n"), kind: .unmarked(info: info))
            block.kind = kind(info: info, directives: directives)
            block.needsFirestore = directives.contains { $0.hasPrefix("<!-- run: firestore") }
            blocks.append(block)
            i = j + 1
        }
        return blocks
    }

    static func kind(info: String, directives: [String]) -> Kind {
        for d in directives where d.hasPrefix("<!-- no-run") {
            var reason = d.dropFirst("<!-- no-run".count)
            if reason.hasSuffix("-->") { reason = reason.dropLast(3) }
            reason = reason.drop { $0 == ":" || $0 == " " }
            return .skipped(reason: reason.trimmingCharacters(in: .whitespaces))
        }
        switch info.lowercased() {
        case let l where shellLanguages.contains(l): return .shell
        case "console": return .console
        case "python", "py": return .python
        case let l where illustrationLanguages.contains(l): return .illustration
        default: return .unmarked(info: info)
        }
    }
}

/// A `console` block: commands after `$ ` (continued by a trailing `\`) and the output shown below each.
///
/// Output is compared line by line, ignoring trailing spaces and trailing blank lines, where:
/// - `…` in a line stands for any text;
/// - a line holding only `...` or `…` stands for any number of lines;
/// - runs of spaces match runs of any length (a table's column may be wider or narrower);
/// - a date-time (`2026-11-26 10:27:13`, RFC 3339) and a UUID match any date-time and any UUID.
struct Transcript {
    struct Step {
        var command: String
        var expected: [String]
        /// Line of the command in the document.
        var line: Int
    }

    var steps: [Step] = []

    init(_ block: DocBlock) {
        var current: Step?
        var continuing = false
        for (offset, raw) in block.text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            if continuing, var c = current {
                c.command += "\n" + line
                current = c
                continuing = line.hasSuffix("\\")
                continue
            }
            if line.hasPrefix("$ ") || line == "$" {
                if let c = current { steps.append(c) }
                current = Step(command: String(line.dropFirst(2)), expected: [], line: block.line + 1 + offset)
                continuing = line.hasSuffix("\\")
            } else if var c = current {
                c.expected.append(line)
                current = c
            }
        }
        if let c = current { steps.append(c) }
    }

    /// True when `actual` is what `expected` shows.
    static func matches(expected: [String], actual: String) -> Bool {
        let want = trimmed(expected)
        let got = trimmed(actual.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
        return match(want[...], got[...])
    }

    private static func trimmed(_ lines: [String]) -> [String] {
        var out = lines.map { String($0.reversed().drop { $0 == " " || $0 == "\t" }.reversed()) }
        while out.last?.isEmpty == true { out.removeLast() }
        return out
    }

    private static func match(_ want: ArraySlice<String>, _ got: ArraySlice<String>) -> Bool {
        guard let first = want.first else { return got.isEmpty }
        let t = first.trimmingCharacters(in: .whitespaces)
        if t == "..." || t == "…" {
            for skip in 0...got.count where match(want.dropFirst(), got.dropFirst(skip)) { return true }
            return false
        }
        guard let line = got.first, lineMatches(first, line) else { return false }
        return match(want.dropFirst(), got.dropFirst())
    }

    static func lineMatches(_ expected: String, _ actual: String) -> Bool {
        if expected == actual { return true }
        return normalized(actual).wholeMatch(of: pattern(expected)) != nil
    }

    // Date-times and UUIDs in the output become these tokens; in the expected line they become the same.
    static func normalized(_ s: String) -> String {
        let dateTime = /\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?( [+-]\d{4})?/
        let uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/
        return s.replacing(dateTime, with: "\u{2}TIME\u{2}").replacing(uuid, with: "\u{2}UUID\u{2}")
    }

    static func pattern(_ expected: String) -> Regex<AnyRegexOutput> {
        var p = ""
        var pendingSpace = false
        for ch in normalized(expected) {
            if ch == " " {
                pendingSpace = true
                continue
            }
            if pendingSpace {
                p += " +"
                pendingSpace = false
            }
            if ch == "…" {
                p += ".*"
                continue
            }
            for scalar in ch.unicodeScalars {
                if scalar.isASCII, scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) {
                    p.unicodeScalars.append(scalar)
                } else {
                    p += "\\x{" + String(scalar.value, radix: 16) + "}"
                }
            }
        }
        if pendingSpace { p += " *" }
        // Everything but ASCII letters and digits is written as \x{…}: no text can make a bad pattern.
        return try! Regex(p)
    }
}
