import MemoryDomain
import MemoryMetrics
import MemoryUtilities

extension SQLiteBackend {
    /// Statements are this backend's requests (each timed under its name: `get_item`, `commit`, …), their
    /// failures its errors; the index reports what ``statistics()`` does.
    public func attachMetrics(_ metrics: BackendMetrics) {
        self.metrics = metrics
        let index = self.index
        metrics.index(
            entries: { Double(index.statistics.vectors) }, users: { Double(index.statistics.users) },
            bytes: { Double(index.statistics.bytes) }, misses: { Double(index.statistics.loads) })
    }
}

/// One connection's statement timers: a duration cell per statement name, resolved on first use (the
/// registry's lock, once per name per connection) and kept. Used by the connection's thread only.
final class SQLiteRequestMetrics {
    let backend: BackendMetrics
    private var cells: [String: HistogramCell] = [:]

    init(_ backend: BackendMetrics) { self.backend = backend }

    /// Runs `body` (one statement's execution) and records its duration, and its error if it throws.
    @inline(__always)
    func measure<T>(_ name: String, _ body: () throws(MemoryError) -> T) throws(MemoryError) -> T {
        let start = monotonicNanos()
        do {
            let result = try body()
            cell(name).observe(since: start, now: monotonicNanos())
            return result
        } catch {
            cell(name).observe(since: start, now: monotonicNanos())
            backend.recordError(error)
            throw error
        }
    }

    private func cell(_ name: String) -> HistogramCell {
        if let c = cells[name] { return c }
        let c = backend.requests(name)
        cells[name] = c
        return c
    }
}
