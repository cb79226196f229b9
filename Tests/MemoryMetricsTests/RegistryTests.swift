import XCTest

@testable import MemoryMetrics

final class RegistryTests: XCTestCase {
    func testCounterAndGaugeRender() {
        let r = MetricsRegistry()
        let c = r.counter("t_requests_total", help: "Requests.", labels: ["method", "code"])
        let ok = c.cell(["Get", "OK"])
        let hidden = c.cell(["Get", "NOT_FOUND"], shownAtZero: false)
        ok.add()
        ok.add(2)
        let g = r.gauge("t_items", help: "Items.").cell()
        g.set(7)
        g.add(-2)
        let text = r.render()
        XCTAssertTrue(text.contains("# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n"))
        XCTAssertTrue(text.contains("t_requests_total{method=\"Get\",code=\"OK\"} 3\n"))
        XCTAssertFalse(text.contains("NOT_FOUND"), "a zero series created hidden stays out")
        hidden.add()
        XCTAssertTrue(r.render().contains("t_requests_total{method=\"Get\",code=\"NOT_FOUND\"} 1\n"))
        XCTAssertTrue(text.contains("# TYPE t_items gauge\nt_items 5\n"))
    }

    func testHistogramBucketsAreCumulativeWithSumAndCount() {
        let r = MetricsRegistry()
        let h = r.histogram("t_duration_seconds", help: "D.", labels: ["m"], buckets: [0.001, 0.01]).cell(["a"])
        h.observe(nanoseconds: 500_000)  // 0.5 ms
        h.observe(nanoseconds: 1_000_000)  // exactly 1 ms: le is inclusive
        h.observe(nanoseconds: 5_000_000)
        h.observe(nanoseconds: 2_000_000_000)
        let text = r.render()
        XCTAssertTrue(text.contains("t_duration_seconds_bucket{m=\"a\",le=\"0.001\"} 2\n"), text)
        XCTAssertTrue(text.contains("t_duration_seconds_bucket{m=\"a\",le=\"0.01\"} 3\n"))
        XCTAssertTrue(text.contains("t_duration_seconds_bucket{m=\"a\",le=\"+Inf\"} 4\n"))
        XCTAssertTrue(text.contains("t_duration_seconds_sum{m=\"a\"} 2.0065\n"), text)
        XCTAssertTrue(text.contains("t_duration_seconds_count{m=\"a\"} 4\n"))
        XCTAssertEqual(h.count, 4)
    }

    func testEscapesAndNumbers() {
        let r = MetricsRegistry()
        r.sampled("t_info", help: "A \\ help\nline.", type: .gauge, labels: ["v"]) { [Sample(["a\"b\\c\nd"], 1)] }
        let text = r.render()
        XCTAssertTrue(text.contains("# HELP t_info A \\\\ help\\nline.\n"))
        XCTAssertTrue(text.contains("t_info{v=\"a\\\"b\\\\c\\nd\"} 1\n"))
        XCTAssertEqual(Exposition.format(.infinity), "+Inf")
        XCTAssertEqual(Exposition.format(0.25), "0.25")
        XCTAssertEqual(Exposition.format(3), "3")
    }

    func testRegisteringANameAgainSharesTheFamily() {
        let r = MetricsRegistry()
        let a = r.counter("t_hits_total", help: "Hits.", labels: ["cache"]).cell(["x"])
        let b = r.counter("t_hits_total", help: "Hits.", labels: ["cache"]).cell(["x"])
        a.add()
        b.add()
        XCTAssertEqual(a.value, 2)
        XCTAssertEqual(r.render().components(separatedBy: "# TYPE t_hits_total").count, 2)
    }

    func testConcurrentAddsAreNotLost() {
        let r = MetricsRegistry()
        let c = r.counter("t_total", help: "T.").cell()
        let h = r.histogram("t_seconds", help: "S.", buckets: [0.001]).cell()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<10_000 {
                c.add()
                h.observe(nanoseconds: 10)
            }
        }
        XCTAssertEqual(c.value, 40_000)
        XCTAssertEqual(h.count, 40_000)
    }

    func testProcessMetrics() {
        let r = MetricsRegistry()
        ProcessMetrics.register(on: r)
        let text = r.render()
        for name in [
            "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
            "process_start_time_seconds", "process_max_fds", "process_virtual_memory_bytes",
        ] {
            let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
            XCTAssertNotNil(line, name)
            XCTAssertGreaterThan(Double(line!.split(separator: " ")[1]) ?? -1, 0, name)
        }
    }
}
