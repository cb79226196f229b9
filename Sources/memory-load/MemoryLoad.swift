import ArgumentParser
import Foundation
import MemoryClient
import MemoryDomain
import MemoryUtilities
import MemoryWire

#if canImport(Glibc)
import Glibc
#endif

/// Load generator for memoryd: many connections, each with one call in flight, driven by a few threads;
/// optionally one extra client that sends and never reads. Prints one JSON document (figures in ms).
@main
struct MemoryLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory-load",
        abstract: "Drive memoryd with many concurrent connections and report errors and latency.")

    @Option(help: "memoryd's socket.") var socket: String
    @Option(help: "Concurrent connections.") var connections = 100
    @Option(help: "Calls per connection (ignored with --duration).") var calls = 100
    @Option(help: "Run for this many seconds instead of a fixed number of calls.") var duration: Double?
    @Option(help: "Driver threads; each owns connections/threads connections.") var threads = 16
    @Option(help: "Embedding dimension of the daemon.") var dimension = 8
    @Option(help: "Per-call deadline sent to the server (ms).") var timeoutMs: UInt64 = 30_000
    @Flag(help: "Add one client that keeps asking for a large item and never reads its responses.") var nonReader =
        false
    @Option(help: "Size of the item the non-reading client asks for (bytes of text).") var nonReaderItemBytes =
        256 * 1024
    @Option(help: "Also sample this pid's VmRSS every --rss-interval seconds (soak).") var rssPid: Int32?
    @Option(help: "RSS sampling interval (s).") var rssInterval: Double = 10
    @Option(
        help:
            "Adds upsert ids from a fixed set of this many per connection, so the stored data stops growing (0 = every add is new; a soak that looks for leaks wants a bound)."
    )
    var boundedIds = 0
    @Option(help: "Memory probe: this many answered calls of --call-bytes, then memoryd's RSS (needs --rss-pid).")
    var bigCalls: Int?
    @Option(help: "Size of each --big-calls request (bytes).") var callBytes = 3 * 1024 * 1024
    @Option(help: "Calls in flight at a time in --big-calls.") var pipeline = 4
    @Option(help: "Memory probe: this many connections send one --frame-bytes frame and stay idle (needs --rss-pid).")
    var idleFrames: Int?
    @Option(help: "Size of each --idle-frames frame (bytes).") var frameBytes = 1024 * 1024

    func run() throws {
        if bigCalls != nil || idleFrames != nil {
            guard let pid = rssPid else { throw ValidationError("--big-calls and --idle-frames need --rss-pid") }
            var out: [String: JSONValue] = [:]
            if let n = bigCalls { out = try runBigCalls(n, pid: pid) }
            if let n = idleFrames { out = try runIdleFrames(n, pid: pid) }
            print(JSONValue.object(out).serialized())
            return
        }
        let shared = Shared()
        if nonReader { try prepareBigItem() }
        let perThread = (0..<threads).map { t in stride(from: t, to: connections, by: threads).map { $0 } }.filter {
            !$0.isEmpty
        }
        // Connect everything first: the figure is for `connections` concurrent connections.
        var conns: [[ClientConnection]] = []
        for ids in perThread { conns.append(try ids.map { _ in try ClientConnection(socketPath: socket) }) }
        let stopAt = duration.map { Date().addingTimeInterval($0) }
        let start = Date()
        let nonReaderThread = nonReader ? runNonReader(shared) : nil
        var rssThread: Thread?
        if let pid = rssPid {
            rssThread = Thread { sampleRSS(pid: pid, until: stopAt ?? start.addingTimeInterval(3600), into: shared) }
            rssThread!.start()
        }
        let group = DispatchGroup()
        for (t, list) in conns.enumerated() {
            let box = Box(list)
            DispatchQueue.global().async(group: group) { drive(box.value, thread: t, stopAt: stopAt, shared: shared) }
        }
        group.wait()
        let elapsed = Date().timeIntervalSince(start)
        shared.done = true
        nonReaderThread?.wait()
        for list in conns { for c in list { c.close() } }
        var lat = shared.latenciesMs
        lat.sort()
        func pct(_ p: Double) -> Double { lat.isEmpty ? 0 : lat[min(lat.count - 1, Int(Double(lat.count) * p))] }
        var out: [String: JSONValue] = [
            "connections": .number(Double(connections)), "calls": .number(Double(lat.count + shared.errors)),
            "errors": .number(Double(shared.errors)), "seconds": .number(elapsed),
            "calls_per_s": .number(Double(lat.count) / max(elapsed, 1e-9)),
            "p50_ms": .number(pct(0.5)), "p99_ms": .number(pct(0.99)), "max_ms": .number(lat.last ?? 0),
            "error_samples": .array(shared.errorSamples.map { .string($0) }),
        ]
        if let r = shared.nonReaderResult {
            out["non_reader_disconnected"] = .bool(r.disconnected)
            out["non_reader_requests_sent"] = .number(Double(r.sent))
            out["non_reader_detail"] = .string(r.detail)
        }
        if rssPid != nil {
            out["rss_kb_samples"] = .array(shared.rssSamples.map { .number(Double($0)) })
        }
        print(JSONValue.object(out).serialized())
        if shared.errors > 0 { throw ExitCode(1) }
    }

    /// Each thread keeps one call in flight on every connection it owns: send on all, then read all.
    func drive(_ conns: [ClientConnection], thread: Int, stopAt: Date?, shared: Shared) {
        var n = 0
        var local: [Double] = []
        var errors = 0
        var samples: [String] = []
        var rng = SystemRandomNumberGenerator()
        while stopAt.map({ Date() < $0 }) ?? (n < calls) {
            n += 1
            var sent: [(UInt64, UInt64, MemoryMethod)] = []
            for (i, c) in conns.enumerated() {
                let request = pick(thread: thread, conn: i, n: n, &rng)
                let t0 = monotonicNanos()
                do {
                    sent.append((try c.start(request, timeoutMs: timeoutMs), t0, request.method))
                } catch {
                    errors += 1
                    if samples.count < 5 { samples.append("send: \(error)") }
                    sent.append((0, 0, .ping))
                }
            }
            for (i, c) in conns.enumerated() where sent[i].0 != 0 {
                do {
                    let r = try c.waitResponse(sent[i].0, timeoutMs: Int(timeoutMs) + 5000)
                    if let e = r.error, !(sent[i].2 == .getMemoryItem && e.type == .notFound) { throw e }
                    local.append(Double(monotonicNanos() - sent[i].1) / 1e6)
                } catch {
                    errors += 1
                    if samples.count < 5 { samples.append("\(sent[i].2.rawValue): \(error)") }
                }
            }
        }
        shared.add(local, errors: errors, samples: samples)
    }

    /// A mix close to an agent's: adds with embeddings, gets, history, search, pings.
    func pick(thread: Int, conn: Int, n: Int, _ rng: inout SystemRandomNumberGenerator) -> MethodRequest {
        let user = "load-u\(conn % 50)"
        switch n % 10 {
        case 0, 1, 2:
            let id = boundedIds > 0 ? "load-\(conn)-\(n % boundedIds)" : ""
            return .addMemoryItem(
                item: MemoryItem(
                    id: id, userID: user, sessionID: "s\(thread)", textContent: "load \(thread)/\(conn)/\(n)",
                    embedding: (0..<dimension).map { _ in Float.random(in: -1...1, using: &rng) }),
                upsert: boundedIds > 0, rejectDuplicateContent: false)
        case 3, 4: return .getMemoryItem(id: "mem_missing_\(n)")
        case 5, 6: return .getConversationHistory(HistoryRequest(userID: user, limit: 10))
        case 7:
            return .semanticSearch(
                SearchRequest(
                    userID: user, queryEmbedding: (0..<dimension).map { _ in Float.random(in: -1...1, using: &rng) },
                    topK: 5))
        default: return .ping
        }
    }

    func prepareBigItem() throws {
        let c = try MemoryClient(socketPath: socket)
        defer { c.close() }
        _ = try c.addMemoryItem(
            MemoryItem(
                id: "load-big", userID: "load-big", textContent: String(repeating: "b", count: nonReaderItemBytes)),
            upsert: true)
    }

    struct NonReaderResult: Sendable {
        var disconnected: Bool
        var sent: Int
        var detail: String
    }

    /// Sends GetMemoryItem("load-big") as fast as the socket takes it, never reading. The server must
    /// disconnect it once its unread output passes max_output_bytes.
    func runNonReader(_ shared: Shared) -> DispatchGroup {
        let g = DispatchGroup()
        let socket = self.socket
        g.enter()
        Thread {
            defer { g.leave() }
            func done(_ r: NonReaderResult) { shared.nonReaderResult = r }
            guard let c = try? ClientConnection(socketPath: socket) else {
                return done(.init(disconnected: false, sent: 0, detail: "connect failed"))
            }
            let flags = fcntl(c.fileDescriptor, F_GETFL)
            _ = fcntl(c.fileDescriptor, F_SETFL, flags | O_NONBLOCK)
            var id: UInt64 = 0
            var sent = 0
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                id += 1
                let f = FrameCodec.encode(
                    .request(
                        RequestFrame(
                            id: id, method: MemoryMethod.getMemoryItem.path,
                            payload: PayloadCodec.encodeRequest(.getMemoryItem(id: "load-big")))))
                let n = f.withUnsafeBytes { send(c.fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    // Our send buffer is full: the server stopped reading us (in-flight limit) or closed.
                    if isPeerClosed(c.fileDescriptor) {
                        return done(.init(disconnected: true, sent: sent, detail: "closed by server"))
                    }
                    usleep(10_000)
                    continue
                }
                if n < 0 {
                    return done(
                        .init(disconnected: true, sent: sent, detail: "send: \(String(cString: strerror(errno)))"))
                }
                sent += 1
                if sent % 64 == 0, isPeerClosed(c.fileDescriptor) {
                    return done(.init(disconnected: true, sent: sent, detail: "closed by server"))
                }
            }
            done(.init(disconnected: false, sent: sent, detail: "still connected after 120 s"))
        }.start()
        return g
    }

    /// True when the server has closed its end (an error or hang-up is pending; unread data does not count).
    func isPeerClosed(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(0x2000 /* POLLRDHUP */), revents: 0)
        guard poll(&p, 1, 0) > 0 else { return false }
        return p.revents & Int16(0x2000 | POLLHUP | POLLERR) != 0
    }

    func sampleRSS(pid: Int32, until: Date, into shared: Shared) {
        while Date() < until && !shared.done {
            if let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kb = Int(line.split(separator: " ").dropFirst().first ?? "")
            {
                shared.addRSS(kb)
            }
            var slept = 0.0
            while slept < rssInterval && !shared.done {
                usleep(100_000)
                slept += 0.1
            }
        }
    }
}

final class Shared: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var latenciesMs: [Double] = []
    private(set) var errors = 0
    private(set) var errorSamples: [String] = []
    private(set) var rssSamples: [Int] = []
    var done = false
    var nonReaderResult: MemoryLoad.NonReaderResult?

    func add(_ lat: [Double], errors: Int, samples: [String]) {
        lock.lock()
        defer { lock.unlock() }
        latenciesMs += lat
        self.errors += errors
        errorSamples += samples.prefix(max(0, 10 - errorSamples.count))
    }

    func addRSS(_ kb: Int) {
        lock.lock()
        rssSamples.append(kb)
        lock.unlock()
    }
}

struct Box<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}
