import Synchronization

/// The kinds of metric of the Prometheus text format.
public enum MetricType: String, Sendable {
    case counter, gauge, histogram
}

/// A set of metric families, rendered together in the Prometheus text exposition format 0.0.4.
///
/// Registering takes a lock and is meant for start-up (or the first use of a label set); recording goes
/// through the cells families hand out, with no lock. Registering a name again returns the family already
/// there, so two owners can share one (and a module can register its metrics in one line wherever it starts).
public final class MetricsRegistry: Sendable {
    private let families = Mutex<[any MetricFamily]>([])

    public init() {}

    /// A counter family (`name` should end in `_total`).
    public func counter(_ name: String, help: String, labels: [String] = []) -> CounterFamily {
        register(name) { CounterFamily(name: name, help: help, labelNames: labels) }
    }

    /// A gauge family whose series are set by the code that knows their values.
    public func gauge(_ name: String, help: String, labels: [String] = []) -> GaugeFamily {
        register(name) { GaugeFamily(name: name, help: help, labelNames: labels) }
    }

    /// A histogram family of durations; `buckets` are upper bounds in seconds, ascending (+Inf is implied).
    public func histogram(_ name: String, help: String, labels: [String] = [], buckets: [Double]) -> HistogramFamily {
        register(name) { HistogramFamily(name: name, help: help, labelNames: labels, buckets: buckets) }
    }

    /// A family whose samples are read when the registry is rendered: figures kept elsewhere (a queue's depth,
    /// /proc, a backend's statistics). `read` runs on the rendering thread and must be cheap.
    public func sampled(
        _ name: String, help: String, type: MetricType, labels: [String] = [],
        _ read: @escaping @Sendable () -> [Sample]
    ) {
        _ = register(name) { SampledFamily(name: name, help: help, type: type, labelNames: labels, read: read) }
    }

    /// Every family in the order registered, in the text format (`Content-Type: text/plain; version=0.0.4`).
    public func render() -> String {
        let list = families.withLock { $0 }
        var out = ExpositionWriter()
        for f in list { f.write(to: &out) }
        return out.text
    }

    private func register<F: MetricFamily>(_ name: String, _ make: () -> F) -> F {
        precondition(Exposition.isValidName(name), "\(name) is not a valid metric name")
        return families.withLock { list in
            if let existing = list.first(where: { $0.name == name }) {
                guard let same = existing as? F else { preconditionFailure("\(name) is registered with another type") }
                return same
            }
            let f = make()
            list.append(f)
            return f
        }
    }
}

/// One sample of a sampled family.
public struct Sample: Sendable {
    public var labels: [String]
    public var value: Double

    public init(_ labels: [String], _ value: Double) {
        self.labels = labels
        self.value = value
    }

    /// A sample of a family without labels.
    public init(_ value: Double) { self.init([], value) }
}

protocol MetricFamily: AnyObject, Sendable {
    var name: String { get }
    func write(to out: inout ExpositionWriter)
}

/// The series of a family by label values, each created once under the lock.
struct SeriesTable<Cell> {
    struct Entry {
        var labels: [String]
        var cell: Cell
        var shownAtZero: Bool
    }
    var entries: [Entry] = []
    var index: [[String]: Int] = [:]

    mutating func cell(_ labels: [String], shownAtZero: Bool, make: () -> Cell) -> Cell {
        if let i = index[labels] {
            if shownAtZero { entries[i].shownAtZero = true }
            return entries[i].cell
        }
        let c = make()
        index[labels] = entries.count
        entries.append(Entry(labels: labels, cell: c, shownAtZero: shownAtZero))
        return c
    }
}

public final class CounterFamily: MetricFamily, @unchecked Sendable {  // state is behind `state`'s mutex
    public let name: String
    public let help: String
    public let labelNames: [String]
    private let store = CellStore<UInt64>()
    private let state = Mutex<SeriesTable<CounterCell>>(SeriesTable())

    init(name: String, help: String, labelNames: [String]) {
        self.name = name
        self.help = help
        self.labelNames = labelNames
    }

    /// The series with these label values (in the order of `labelNames`), created at 0 on first use.
    /// - Parameter shownAtZero: false leaves the series out of the exposition until it counts something (for
    ///   label sets created up front that are rarely used, e.g. every method × every error code).
    public func cell(_ labelValues: [String] = [], shownAtZero: Bool = true) -> CounterCell {
        precondition(labelValues.count == labelNames.count, "\(name) takes labels \(labelNames)")
        return state.withLock { t in
            t.cell(labelValues, shownAtZero: shownAtZero) { CounterCell(cell: store.allocate(1)) }
        }
    }

    func write(to out: inout ExpositionWriter) {
        let entries = state.withLock { $0.entries }
        out.header(name, help: help, type: .counter)
        for e in entries {
            let v = e.cell.value
            guard v != 0 || e.shownAtZero else { continue }
            out.sample(name, labelNames, e.labels, v)
        }
    }
}

public final class GaugeFamily: MetricFamily, @unchecked Sendable {  // as CounterFamily
    public let name: String
    public let help: String
    public let labelNames: [String]
    private let store = CellStore<Int64>()
    private let state = Mutex<SeriesTable<GaugeCell>>(SeriesTable())

    init(name: String, help: String, labelNames: [String]) {
        self.name = name
        self.help = help
        self.labelNames = labelNames
    }

    public func cell(_ labelValues: [String] = []) -> GaugeCell {
        precondition(labelValues.count == labelNames.count, "\(name) takes labels \(labelNames)")
        return state.withLock { t in t.cell(labelValues, shownAtZero: true) { GaugeCell(cell: store.allocate(1)) } }
    }

    func write(to out: inout ExpositionWriter) {
        let entries = state.withLock { $0.entries }
        out.header(name, help: help, type: .gauge)
        for e in entries { out.sample(name, labelNames, e.labels, Double(e.cell.value)) }
    }
}

public final class HistogramFamily: MetricFamily, @unchecked Sendable {  // as CounterFamily; bounds immutable
    public let name: String
    public let help: String
    public let labelNames: [String]
    /// Upper bounds in seconds.
    public let buckets: [Double]
    private let bounds: UnsafeMutablePointer<UInt64>
    private let store = CellStore<UInt64>()
    private let state = Mutex<SeriesTable<HistogramCell>>(SeriesTable())

    init(name: String, help: String, labelNames: [String], buckets: [Double]) {
        precondition(
            !buckets.isEmpty && zip(buckets, buckets.dropFirst()).allSatisfy { $0 < $1 }, "\(name): bad buckets")
        precondition(!labelNames.contains("le"), "\(name): le is the histogram's own label")
        self.name = name
        self.help = help
        self.labelNames = labelNames
        self.buckets = buckets
        bounds = .allocate(capacity: buckets.count)
        for (i, b) in buckets.enumerated() { bounds[i] = UInt64((b * 1e9).rounded()) }
    }

    deinit { bounds.deallocate() }

    public func cell(_ labelValues: [String] = [], shownAtZero: Bool = true) -> HistogramCell {
        precondition(labelValues.count == labelNames.count, "\(name) takes labels \(labelNames)")
        return state.withLock { t in
            t.cell(labelValues, shownAtZero: shownAtZero) {
                HistogramCell(
                    cells: store.allocate(buckets.count + 2), bounds: UnsafePointer(bounds), boundCount: buckets.count)
            }
        }
    }

    func write(to out: inout ExpositionWriter) {
        let entries = state.withLock { $0.entries }
        out.header(name, help: help, type: .histogram)
        let le = labelNames + ["le"]
        let bucketName = name + "_bucket"
        for e in entries {
            let counts = e.cell.cumulativeCounts
            let total = counts.last ?? 0
            guard total != 0 || e.shownAtZero else { continue }
            for (i, b) in buckets.enumerated() {
                out.sample(bucketName, le, e.labels + [Exposition.format(b)], counts[i])
            }
            out.sample(bucketName, le, e.labels + ["+Inf"], total)
            out.sample(name + "_sum", labelNames, e.labels, e.cell.sumSeconds)
            out.sample(name + "_count", labelNames, e.labels, total)
        }
    }
}

final class SampledFamily: MetricFamily, Sendable {
    let name: String
    let help: String
    let type: MetricType
    let labelNames: [String]
    let read: @Sendable () -> [Sample]

    init(name: String, help: String, type: MetricType, labelNames: [String], read: @escaping @Sendable () -> [Sample]) {
        self.name = name
        self.help = help
        self.type = type
        self.labelNames = labelNames
        self.read = read
    }

    func write(to out: inout ExpositionWriter) {
        let samples = read()
        out.header(name, help: help, type: type)
        for s in samples where s.labels.count == labelNames.count { out.sample(name, labelNames, s.labels, s.value) }
    }
}
