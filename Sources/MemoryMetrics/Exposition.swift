/// Writes the Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` per family, then one
/// line per sample, `name{label="value",...} value`.
struct ExpositionWriter {
    private(set) var text = ""

    init() { text.reserveCapacity(16 * 1024) }

    mutating func header(_ name: String, help: String, type: MetricType) {
        text += "# HELP \(name) \(Exposition.escapeHelp(help))\n# TYPE \(name) \(type.rawValue)\n"
    }

    mutating func sample(_ name: String, _ labelNames: [String], _ labelValues: [String], _ value: UInt64) {
        labels(name, labelNames, labelValues)
        text += String(value)
        text += "\n"
    }

    mutating func sample(_ name: String, _ labelNames: [String], _ labelValues: [String], _ value: Double) {
        labels(name, labelNames, labelValues)
        text += Exposition.format(value)
        text += "\n"
    }

    private mutating func labels(_ name: String, _ labelNames: [String], _ labelValues: [String]) {
        text += name
        if !labelNames.isEmpty {
            text += "{"
            for (i, (n, v)) in zip(labelNames, labelValues).enumerated() {
                if i > 0 { text += "," }
                text += n
                text += "=\""
                text += Exposition.escapeLabel(v)
                text += "\""
            }
            text += "}"
        }
        text += " "
    }
}

/// The format's rules for names, escapes and numbers.
public enum Exposition {
    /// The media type of the text format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    static func isValidName(_ s: String) -> Bool {
        guard let first = s.utf8.first else { return false }
        func letter(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c == 95 || c == 58 }
        return letter(first) && s.utf8.allSatisfy { letter($0) || ($0 >= 48 && $0 <= 57) }
    }

    /// HELP text: backslash and newline escaped.
    static func escapeHelp(_ s: String) -> String {
        guard s.contains(where: { $0 == "\\" || $0 == "\n" }) else { return s }
        return s.replacing("\\", with: "\\\\").replacing("\n", with: "\\n")
    }

    /// Label values: backslash, double quote and newline escaped.
    static func escapeLabel(_ s: String) -> String {
        guard s.contains(where: { $0 == "\\" || $0 == "\n" || $0 == "\"" }) else { return s }
        return s.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: "\\n")
    }

    /// A sample value as Go's strconv would print it: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
    public static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}
