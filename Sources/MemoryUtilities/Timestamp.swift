#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in UTC time, as `google.protobuf.Timestamp`. memoryd keeps microsecond precision (Firestore's),
/// so both backends order and compare timestamps the same way.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var seconds: Int64
    public var nanos: Int32

    public init(seconds: Int64, nanos: Int32 = 0) {
        self.seconds = seconds
        self.nanos = nanos
    }

    public init(microseconds: Int64) {
        var s = microseconds / 1_000_000
        var us = microseconds % 1_000_000
        if us < 0 {
            s -= 1
            us += 1_000_000
        }
        self.init(seconds: s, nanos: Int32(us * 1000))
    }

    /// Wall-clock now, truncated to microseconds.
    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: Int64(ts.tv_sec), nanos: Int32(ts.tv_nsec / 1000 * 1000))
    }

    public var microseconds: Int64 { seconds &* 1_000_000 &+ Int64(nanos / 1000) }

    /// The same instant truncated to microseconds.
    public var truncatedToMicroseconds: Timestamp { Timestamp(microseconds: microseconds) }

    public func adding(seconds delta: Double) -> Timestamp {
        Timestamp(microseconds: microseconds + Int64(delta * 1_000_000))
    }

    public var isValid: Bool {
        // google.protobuf.Timestamp range: 0001-01-01 .. 9999-12-31.
        seconds >= -62_135_596_800 && seconds <= 253_402_300_799 && nanos >= 0 && nanos < 1_000_000_000
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        (a.seconds, a.nanos) < (b.seconds, b.nanos)
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2026-11-26T09:38:53.152626Z`.
    /// Never traps: `nanos` outside 0..<1e9 (a Timestamp off the wire, not yet validated) is carried into
    /// the seconds first.
    public var rfc3339: String {
        var secs = seconds
        var n = Int64(nanos)
        secs = secs &+ n / 1_000_000_000
        n %= 1_000_000_000
        if n < 0 {
            secs = secs &- 1
            n += 1_000_000_000
        }
        var t = time_t(secs)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func pad(_ v: Int, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        let frac = pad(Int(n / 1000), 6)
        return "\(pad(Int(tmv.tm_year) + 1900, 4))-\(pad(Int(tmv.tm_mon) + 1, 2))-\(pad(Int(tmv.tm_mday), 2))T"
            + "\(pad(Int(tmv.tm_hour), 2)):\(pad(Int(tmv.tm_min), 2)):\(pad(Int(tmv.tm_sec), 2)).\(frac)Z"
    }

    public var description: String { rfc3339 }

    /// Parses RFC 3339 (`2026-11-26T09:38:53.152626Z`, `...+02:00`, fraction optional).
    public init?(rfc3339 s: String) {
        let b = Array(s.utf8)
        guard b.count >= 20 else { return nil }
        func num(_ from: Int, _ len: Int) -> Int? {
            guard from + len <= b.count else { return nil }
            var v = 0
            for i in from..<from + len {
                guard b[i] >= 48 && b[i] <= 57 else { return nil }
                v = v * 10 + Int(b[i] - 48)
            }
            return v
        }
        guard let year = num(0, 4), b[4] == 45, let month = num(5, 2), b[7] == 45, let day = num(8, 2),
            b[10] == 84 || b[10] == 116 || b[10] == 32, let hour = num(11, 2), b[13] == 58,
            let minute = num(14, 2), b[16] == 58, let second = num(17, 2),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var i = 19
        var nanos = 0
        if i < b.count && b[i] == 46 {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 48 && b[i] <= 57 {
                if digits < 9 {
                    nanos = nanos * 10 + Int(b[i] - 48)
                    digits += 1
                }
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<9 { nanos *= 10 }
        }
        guard i < b.count else { return nil }
        var offset = 0
        if b[i] == 90 || b[i] == 122 {
            i += 1
        } else if b[i] == 43 || b[i] == 45, let oh = num(i + 1, 2), b.count > i + 3, b[i + 3] == 58,
            let om = num(i + 4, 2)
        {
            offset = (oh * 60 + om) * 60 * (b[i] == 43 ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let secs = Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offset)
        self.init(seconds: secs, nanos: Int32(nanos))
    }
}

/// A monotonic point in time, for deadlines.
public struct Deadline: Sendable, Comparable {
    public var uptimeNanos: UInt64

    public init(uptimeNanos: UInt64) { self.uptimeNanos = uptimeNanos }

    public static func now() -> Deadline { Deadline(uptimeNanos: monotonicNanos()) }

    public static func after(milliseconds: UInt64) -> Deadline {
        Deadline(uptimeNanos: monotonicNanos() &+ milliseconds &* 1_000_000)
    }

    public static let distantFuture = Deadline(uptimeNanos: UInt64.max)

    public var hasPassed: Bool { monotonicNanos() >= uptimeNanos }

    /// Milliseconds left (0 when passed).
    public var remainingMilliseconds: UInt64 {
        let now = monotonicNanos()
        return uptimeNanos > now ? (uptimeNanos - now) / 1_000_000 : 0
    }

    public static func < (a: Deadline, b: Deadline) -> Bool { a.uptimeNanos < b.uptimeNanos }
}

/// CLOCK_MONOTONIC in nanoseconds.
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
