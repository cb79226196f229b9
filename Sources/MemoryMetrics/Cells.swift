import Synchronization

// The cells that recording touches. Each is a pointer into memory its family owns (never moved, freed with the
// family), so a handle is a plain value: copying or storing one costs no reference counting, and recording is
// one or two relaxed atomic adds — no lock, from any thread.

/// One counter series: a monotonically increasing count.
public struct CounterCell: @unchecked Sendable {  // the cell is an atomic; the family outlives its handles
    let cell: UnsafeMutablePointer<Atomic<UInt64>>

    /// Adds `n` (default 1).
    @inline(__always)
    public func add(_ n: UInt64 = 1) { cell.pointee.wrappingAdd(n, ordering: .relaxed) }

    public var value: UInt64 { cell.pointee.load(ordering: .relaxed) }
}

/// One gauge series: a value that goes up and down, set by the code that knows it.
public struct GaugeCell: @unchecked Sendable {  // as CounterCell
    let cell: UnsafeMutablePointer<Atomic<Int64>>

    @inline(__always)
    public func set(_ v: Int64) { cell.pointee.store(v, ordering: .relaxed) }

    @inline(__always)
    public func add(_ n: Int64) { cell.pointee.wrappingAdd(n, ordering: .relaxed) }

    public var value: Int64 { cell.pointee.load(ordering: .relaxed) }
}

/// One histogram series of durations: a count per bucket (not cumulative: an observation touches one bucket)
/// and the sum in nanoseconds. The total count is the sum of the buckets, so it always agrees with them.
public struct HistogramCell: @unchecked Sendable {  // as CounterCell; `bounds` is immutable
    /// `bounds.count + 1` bucket counts (the last is +Inf), then the sum in nanoseconds.
    let cells: UnsafeMutablePointer<Atomic<UInt64>>
    /// Upper bounds in nanoseconds, ascending.
    let bounds: UnsafePointer<UInt64>
    let boundCount: Int

    /// Records one duration. Fast calls stop at the first bounds: the search runs from the smallest bucket.
    @inline(__always)
    public func observe(nanoseconds: UInt64) {
        var i = 0
        while i < boundCount && nanoseconds > bounds[i] { i += 1 }
        cells[i].wrappingAdd(1, ordering: .relaxed)
        cells[boundCount + 1].wrappingAdd(nanoseconds, ordering: .relaxed)
    }

    /// Records `count` observations of the same duration at once.
    @inline(__always)
    public func observe(nanoseconds: UInt64, count: UInt64) {
        var i = 0
        while i < boundCount && nanoseconds > bounds[i] { i += 1 }
        cells[i].wrappingAdd(count, ordering: .relaxed)
        cells[boundCount + 1].wrappingAdd(nanoseconds &* count, ordering: .relaxed)
    }

    /// Records the time since `start` (a `monotonicNanos()` reading); a clock that went backwards counts as 0.
    @inline(__always)
    public func observe(since start: UInt64, now: UInt64) {
        observe(nanoseconds: now >= start ? now - start : 0)
    }

    /// Observations so far.
    public var count: UInt64 {
        var n: UInt64 = 0
        for i in 0...boundCount { n &+= cells[i].load(ordering: .relaxed) }
        return n
    }

    /// Sum of the observations, in seconds.
    public var sumSeconds: Double { Double(cells[boundCount + 1].load(ordering: .relaxed)) / 1e9 }

    /// Cumulative counts per bucket, as exposed (`le` = each bound, then +Inf).
    public var cumulativeCounts: [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(boundCount + 1)
        var n: UInt64 = 0
        for i in 0...boundCount {
            n &+= cells[i].load(ordering: .relaxed)
            out.append(n)
        }
        return out
    }
}

/// Memory for cells, allocated in blocks that never move and are freed together.
final class CellStore<Value: AtomicRepresentable & FixedWidthInteger>: @unchecked Sendable {
    // Guarded by the owning family's mutex; cells themselves are atomics.
    private var blocks: [(UnsafeMutablePointer<Atomic<Value>>, Int)] = []

    func allocate(_ count: Int) -> UnsafeMutablePointer<Atomic<Value>> {
        let p = UnsafeMutablePointer<Atomic<Value>>.allocate(capacity: count)
        for i in 0..<count { (p + i).initialize(to: Atomic<Value>(0)) }
        blocks.append((p, count))
        return p
    }

    deinit {
        for (p, n) in blocks {
            p.deinitialize(count: n)
            p.deallocate()
        }
    }
}
