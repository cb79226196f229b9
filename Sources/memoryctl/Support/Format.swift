import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// How values look to people: local times, short durations, shortened text, aligned tables.
enum Format {
    /// Local time, `2026-11-26 10:38:53` (with `zone`, `2026-11-26 10:38:53 +0100`).
    static func localTime(_ ts: Timestamp?, zone: Bool = false) -> String {
        guard let ts else { return "-" }
        var t = time_t(ts.seconds)
        var tmv = tm()
        localtime_r(&t, &tmv)
        var buf = [CChar](repeating: 0, count: 64)
        let n = strftime(&buf, buf.count, zone ? "%Y-%m-%d %H:%M:%S %z" : "%Y-%m-%d %H:%M:%S", &tmv)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `3d 4h`, `2h 5m`, `4m 10s`, `12s`.
    static func duration(seconds: Double) -> String {
        let s = Int(seconds.rounded(.down))
        let (d, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60)
        if d > 0 { return "\(d)d \(h)h" }
        if h > 0 { return "\(h)h \(m)m" }
        if m > 0 { return "\(m)m \(sec)s" }
        return "\(sec)s"
    }

    /// Milliseconds with three significant decimals: `0.214 ms`, `12.3 ms`.
    static func milliseconds(_ ms: Double) -> String {
        if ms < 10 { return String(Int((ms * 1000).rounded())).leftPadded(4, "0").insertingDot(3) + " ms" }
        if ms < 100 { return String(Int((ms * 10).rounded())).insertingDot(1) + " ms" }
        return "\(Int(ms.rounded())) ms"
    }

    /// One line: newlines and tabs become spaces; past `max` characters the end becomes `…`.
    static func oneLine(_ text: String, max: Int?) -> String {
        var s = String(text.map { $0 == "\n" || $0 == "\r" || $0 == "\t" || $0 == "\r\n" ? " " : $0 })
        if let max, s.count > max { s = String(s.prefix(Swift.max(1, max - 1))) + "…" }
        return s
    }

    /// A number as JSON shows it (integers without a fraction).
    static func number(_ n: Double) -> String { JSONValue.format(n) }

    /// A JSON value for a table cell or a detail line: strings bare, the rest as compact JSON.
    static func value(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): s.isEmpty ? "-" : s
        case .number(let n): number(n)
        default: v.serialized()
        }
    }

    static func embedding(_ e: [Float], full: Bool) -> String {
        if e.isEmpty { return "-" }
        let shown = full ? e : Array(e.prefix(4))
        let list = shown.map { "\($0)" }.joined(separator: ", ")
        return "\(e.count) values [\(list)\(shown.count < e.count ? ", …" : "")]"
    }

    /// The width of the terminal on stdout, or nil when stdout is not a terminal.
    static var terminalWidth: Int? {
        guard isatty(1) == 1 else { return nil }
        var ws = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0 { return Int(ws.ws_col) }
        if let c = getenv("COLUMNS"), let n = Int(String(cString: c)), n > 0 { return n }
        return 80
    }
}

/// An aligned table. The last column is shortened to fit the terminal (or 60 characters when not on a
/// terminal) unless `full`.
struct Table {
    var headers: [String]
    var rows: [[String]] = []

    init(_ headers: String...) { self.headers = headers }

    mutating func add(_ cells: String...) { rows.append(cells) }

    func render(full: Bool) -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count - 1 { widths[i] = max(widths[i], cell.count) }
        }
        let fixed = widths.dropLast().reduce(0, +) + 2 * (widths.count - 1)
        var lastMax: Int?
        if !full {
            if let w = Format.terminalWidth { lastMax = max(20, w - fixed) } else { lastMax = 60 }
        }
        var lines: [String] = []
        for row in [headers] + rows {
            var line = ""
            for (i, cell) in row.enumerated() {
                if i == row.count - 1 {
                    line += Format.oneLine(cell, max: lastMax)
                } else {
                    line += cell.padded(widths[i]) + "  "
                }
            }
            lines.append(line.trailingSpacesRemoved())
        }
        return lines.joined(separator: "\n")
    }
}

/// Aligned `key  value` lines under a first line.
struct Block {
    var lines: [(String, String)] = []

    mutating func add(_ key: String, _ value: String) { lines.append((key, value)) }

    func render(indent: String = "") -> String {
        let width = lines.map(\.0.count).max() ?? 0
        return lines.map { key, value in
            // Continuation lines of a multi-line value line up under its first line.
            let pad = String(repeating: " ", count: indent.count + width + 2)
            let v = value.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\n" + pad)
            return (indent + key.padded(width) + "  " + v).trailingSpacesRemoved()
        }.joined(separator: "\n")
    }
}

extension String {
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPadded(_ width: Int, _ c: Character) -> String {
        count >= width ? self : String(repeating: c, count: width - count) + self
    }
    func insertingDot(_ decimals: Int) -> String {
        let s = leftPadded(decimals + 1, "0")
        return String(s.dropLast(decimals)) + "." + String(s.suffix(decimals))
    }
    func trailingSpacesRemoved() -> String {
        var s = Substring(self)
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
