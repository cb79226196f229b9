import Foundation
import MemoryClient
import MemoryDomain
import MemoryUtilities
import MemoryWire

#if canImport(Glibc)
import Glibc
#endif

/// What memoryd keeps after large requests (docs/reliability.md "Memory held"), read as its VmRSS:
/// `--big-calls N`: N answered calls of `--call-bytes` each, sent with `--timeout-ms` (a long deadline keeps
/// a call in the deadline heap); `--idle-frames N`: N connections that each send one frame of `--frame-bytes`
/// and then stay open, idle.
extension MemoryLoad {
    /// A request of about `bytes` bytes that the server answers without storing anything: `request`'s payload
    /// plus an unknown field (ignored by every request message).
    static func bigFrame(id: UInt64, _ request: MethodRequest, bytes: Int, timeoutMs: UInt64) -> [UInt8] {
        var payload = PayloadCodec.encodeRequest(request)
        let filler = max(0, bytes - payload.count - 64)
        payload.append(0x7a)  // field 15, length-delimited
        var n = filler
        repeat {
            payload.append(UInt8(n & 0x7f) | (n > 0x7f ? 0x80 : 0))
            n >>= 7
        } while n > 0
        payload += [UInt8](repeating: 0x61, count: filler)
        return FrameCodec.encode(
            .request(RequestFrame(id: id, method: request.method.path, timeoutMs: timeoutMs, payload: payload)))
    }

    static func rssKiB(_ pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return -1 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }

    /// `--big-calls`: answered calls (GetMemoryItem of a missing id, NotFound) of `callBytes`, `pipeline` in
    /// flight at a time on one connection; RSS before, right after the last answer, and one second later.
    func runBigCalls(_ count: Int, pid: Int32) throws -> [String: JSONValue] {
        let c = try ClientConnection(socketPath: socket)
        defer { c.close() }
        let before = Self.rssKiB(pid)
        var peak = before
        var next: UInt64 = 1
        var answered = 0
        while answered < count {
            let ids = (0..<min(pipeline, count - answered)).map { i in next + UInt64(i) }
            next += UInt64(ids.count)
            for id in ids {
                try c.writeRaw(
                    Self.bigFrame(id: id, .getMemoryItem(id: "probe-\(id)"), bytes: callBytes, timeoutMs: timeoutMs))
            }
            for id in ids {
                let r = try c.waitResponse(id, timeoutMs: 120_000)
                guard r.error?.type == .notFound else { throw r.error ?? MemoryError.call(.internal, "found?") }
            }
            answered += ids.count
            peak = max(peak, Self.rssKiB(pid))
        }
        let after = Self.rssKiB(pid)
        sleep(1)
        return [
            "probe": .string("big-calls"), "calls": .number(Double(count)), "call_bytes": .number(Double(callBytes)),
            "timeout_ms": .number(Double(timeoutMs)), "pipeline": .number(Double(pipeline)),
            "rss_kib_before": .number(Double(before)), "rss_kib_peak_sampled": .number(Double(peak)),
            "rss_kib_after": .number(Double(after)), "rss_kib_1s_later": .number(Double(Self.rssKiB(pid))),
        ]
    }

    /// `--idle-frames`: `count` connections, each sends one Ping of `frameBytes` (an unknown field makes it big),
    /// gets its answer and stays open; RSS before, with all of them idle, and after they close.
    func runIdleFrames(_ count: Int, pid: Int32) throws -> [String: JSONValue] {
        let before = Self.rssKiB(pid)
        var idle: [ClientConnection] = []
        for _ in 0..<count {
            let c = try ClientConnection(socketPath: socket)
            try c.writeRaw(Self.bigFrame(id: 1, .ping, bytes: frameBytes, timeoutMs: 0))
            let r = try c.waitResponse(1, timeoutMs: 120_000)
            if let e = r.error { throw e }
            idle.append(c)
        }
        sleep(1)
        let withIdle = Self.rssKiB(pid)
        for c in idle { c.close() }
        sleep(1)
        return [
            "probe": .string("idle-frames"), "connections": .number(Double(count)),
            "frame_bytes": .number(Double(frameBytes)), "rss_kib_before": .number(Double(before)),
            "rss_kib_idle": .number(Double(withIdle)),
            "kib_per_idle_connection": .number(Double(withIdle - before) / Double(max(1, count))),
            "rss_kib_after_close": .number(Double(Self.rssKiB(pid))),
        ]
    }
}
