import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// The standard process metrics of Prometheus client libraries, read from /proc when rendered:
/// `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
/// `process_open_fds`, `process_max_fds` and `process_start_time_seconds`.
public enum ProcessMetrics {
    /// Registers the process families on `registry` (Linux; elsewhere they render no samples).
    public static func register(on registry: MetricsRegistry) {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        // Fixed for the process's life: read once.
        let start = readStat().map { bootTime() + $0.startTicks / ticks }
        registry.sampled(
            "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", type: .counter
        ) {
            readStat().map { [Sample((($0.userTicks + $0.systemTicks) / ticks))] } ?? []
        }
        registry.sampled("process_resident_memory_bytes", help: "Resident memory size in bytes.", type: .gauge) {
            readStat().map { [Sample($0.rssPages * page)] } ?? []
        }
        registry.sampled("process_virtual_memory_bytes", help: "Virtual memory size in bytes.", type: .gauge) {
            readStat().map { [Sample($0.virtualBytes)] } ?? []
        }
        registry.sampled("process_open_fds", help: "Number of open file descriptors.", type: .gauge) {
            openFileDescriptors().map { [Sample(Double($0))] } ?? []
        }
        registry.sampled("process_max_fds", help: "Maximum number of open file descriptors.", type: .gauge) {
            var r = rlimit()
            guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &r) == 0 else { return [] }
            return [Sample(Double(r.rlim_cur))]
        }
        registry.sampled(
            "process_start_time_seconds", help: "Start time of the process since unix epoch in seconds.", type: .gauge
        ) { start.map { [Sample($0)] } ?? [] }
    }

    struct Stat {
        var userTicks: Double
        var systemTicks: Double
        var startTicks: Double
        var virtualBytes: Double
        var rssPages: Double
    }

    /// Fields of /proc/self/stat after the command name (which may hold spaces, hence the last ")").
    static func readStat() -> Stat? {
        guard let text = TextFile.read("/proc/self/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let f = text[text.index(after: close)...].split(separator: " ")
        // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
        guard f.count > 21, let u = Double(f[11]), let s = Double(f[12]), let st = Double(f[19]),
            let vs = Double(f[20]), let rss = Double(f[21])
        else { return nil }
        return Stat(userTicks: u, systemTicks: s, startTicks: st, virtualBytes: vs, rssPages: rss)
    }

    /// The boot time, seconds since the epoch (`btime` of /proc/stat).
    static func bootTime() -> Double {
        guard let text = TextFile.read("/proc/stat") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6)) ?? 0
        }
        return 0
    }

    static func openFileDescriptors() -> Int? {
        guard let dir = opendir("/proc/self/fd") else { return nil }
        defer { closedir(dir) }
        var n = 0
        while let e = readdir(dir) {
            let dot = withUnsafeBytes(of: e.pointee.d_name) { $0[0] == 46 }  // "." and ".."
            if !dot { n += 1 }
        }
        return n - 1  // the directory stream's own descriptor
    }
}
