import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Logs one line per event to stderr. Under systemd (`$JOURNAL_STREAM`) lines start with the syslog
/// priority (`<6>`) so journald files them at the right level and adds its own timestamp; otherwise they
/// start with an RFC 3339 time. Metadata follows as `key=value`.
public struct StderrLogHandler: LogHandler {
    /// The level of every handler, changed at once by SIGHUP reloads.
    public static let sharedLevel = Atomic<Int>(Logger.Level.info.rank)

    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let journald: Bool

    public init(label: String) {
        self.label = label
        self.journald = getenv("JOURNAL_STREAM") != nil
    }

    public var logLevel: Logger.Level {
        get { Logger.Level.allCases[StderrLogHandler.sharedLevel.load(ordering: .relaxed)] }
        set { StderrLogHandler.sharedLevel.store(newValue.rank, ordering: .relaxed) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = ""
        if journald {
            line = "<\(event.level.syslogPriority)>"
        } else {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            var t = time_t(ts.tv_sec)
            var tmv = tm()
            gmtime_r(&t, &tmv)
            let ms = Int(ts.tv_nsec / 1_000_000)
            func p(_ v: Int32, _ w: Int = 2) -> String {
                let s = String(v)
                return String(repeating: "0", count: max(0, w - s.count)) + s
            }
            line =
                "\(p(tmv.tm_year + 1900, 4))-\(p(tmv.tm_mon + 1))-\(p(tmv.tm_mday))T\(p(tmv.tm_hour)):\(p(tmv.tm_min)):\(p(tmv.tm_sec)).\(p(Int32(ms), 3))Z \(event.level) "
        }
        line += "\(event.message)"
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { a, _ in a } }
        if let extra = event.metadata { all.merge(extra) { _, b in b } }
        for key in all.keys.sorted() {
            let v = "\(all[key]!)"
            line += v.contains(" ") || v.isEmpty ? " \(key)=\"\(v)\"" : " \(key)=\(v)"
        }
        line += "\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}

extension Logger.Level {
    public var rank: Int { Logger.Level.allCases.firstIndex(of: self)! }

    var syslogPriority: Int {
        switch self {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}
