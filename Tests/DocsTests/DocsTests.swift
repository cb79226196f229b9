import Foundation
import MemoryTestSupport
import XCTest

/// Every code block a reader would run, in every document, runs here against a real daemon (the
/// convention: `DocBlock`; how: `DocRunner`). A document not in `documents` runs in
/// `testDocumentsNotListedAbove`.
final class DocsTests: XCTestCase {
    /// Every Markdown document of the repository that readers follow.
    static let documents = [
        "README.md", "PROTOCOL.md", "docs/operating.md", "docs/firestore.md", "docs/architecture.md",
        "docs/performance.md", "docs/reliability.md", "docs/migration.md", "clients/python/README.md",
    ]

    static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Firestore blocks run when the suite tests firestore (MEMORYD_TEST_BACKENDS) and always under CI.
    static var runFirestore: Bool {
        let backends = ProcessInfo.processInfo.environment["MEMORYD_TEST_BACKENDS"] ?? ""
        return isCI || backends.split(separator: ",").contains("firestore")
    }

    func run(_ document: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let start = Date()
        var firestore = Self.runFirestore
        if firestore && FirestoreEmulator.gcloudPath == nil {
            if Self.isCI { XCTFail("CI=true: \(document) has Firestore blocks and gcloud is missing") }
            firestore = false
        }
        let blocks = DocBlock.parse(
            try String(contentsOfFile: TestPaths.packageRoot + "/" + document, encoding: .utf8), file: document)
        var python: String?
        if blocks.contains(where: { $0.kind == .python || $0.text.contains("python") && $0.isRunnable }) {
            python = try PythonVenv.shared.binDirectory()
        }
        let runner = try DocRunner(document: document, runFirestore: firestore, python: python)
        let failures = try runner.run()
        for f in failures { XCTFail("\(f)", file: file, line: line) }
        let ran = runner.blocks.filter { $0.isRunnable && (!$0.needsFirestore || firestore) }.count
        print(
            "docs: \(document): \(ran) blocks run, \(failures.count) failures in \(Int(Date().timeIntervalSince(start))) s"
        )
    }

    func testREADME() throws { try run("README.md") }
    func testPROTOCOL() throws { try run("PROTOCOL.md") }
    func testOperating() throws { try run("docs/operating.md") }
    func testFirestore() throws { try run("docs/firestore.md") }
    func testArchitecture() throws { try run("docs/architecture.md") }
    func testPerformance() throws { try run("docs/performance.md") }
    func testReliability() throws { try run("docs/reliability.md") }
    func testPythonClientREADME() throws { try run("clients/python/README.md") }
    func testMigration() throws { try run("docs/migration.md") }

    /// operating.md's Prometheus configuration and alert rules are what an operator copies: promtool must
    /// accept both as written (the rules file under the name the configuration gives it).
    func testOperatingPrometheusConfigurationPassesPromtool() throws {
        let promtool = try MetricsTools.require("promtool", "Debian package prometheus")
        let blocks = DocBlock.parse(
            try String(contentsOfFile: TestPaths.packageRoot + "/docs/operating.md", encoding: .utf8),
            file: "docs/operating.md")
        let yaml = blocks.filter { $0.info == "yaml" }
        guard let rules = yaml.first(where: { $0.text.hasPrefix("# memoryd-alerts.yml") }),
            let config = yaml.first(where: { $0.text.contains("scrape_configs:") })
        else { return XCTFail("operating.md has no yaml block for memoryd-alerts.yml or scrape_configs") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("promtool-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try rules.text.write(toFile: dir + "/memoryd-alerts.yml", atomically: true, encoding: .utf8)
        try config.text.write(toFile: dir + "/prometheus.yml", atomically: true, encoding: .utf8)
        let (rulesStatus, rulesOut) = try MetricsTools.run(promtool, ["check", "rules", dir + "/memoryd-alerts.yml"])
        XCTAssertEqual(rulesStatus, 0, "promtool check rules: \(rulesOut)")
        XCTAssertTrue(rulesOut.contains("SUCCESS: 2 rules found"), rulesOut)
        let (configStatus, configOut) = try MetricsTools.run(promtool, ["check", "config", dir + "/prometheus.yml"])
        XCTAssertEqual(configStatus, 0, "promtool check config: \(configOut)")
    }

    /// A document nobody listed here runs too: every Markdown file at the top, in docs/ and in
    /// clients/python/.
    func testDocumentsNotListedAbove() throws {
        let fm = FileManager.default
        let root = TestPaths.packageRoot
        for dir in ["", "docs/", "clients/python/"] {
            for entry in try fm.contentsOfDirectory(atPath: root + "/" + dir).sorted()
            where entry.hasSuffix(".md") && !Self.documents.contains(dir + entry) {
                try run(dir + entry)
            }
        }
    }
}

/// The Python client's venv for python blocks: `.build/docs-venv`, made once, the client reinstalled from
/// the working tree once per test run.
final class PythonVenv: @unchecked Sendable {
    static let shared = PythonVenv()
    private let lock = NSLock()
    private var ready: String?

    func binDirectory() throws -> String? {
        lock.lock()
        defer { lock.unlock() }
        if let ready { return ready }
        let venv = TestPaths.packageRoot + "/.build/docs-venv"
        let python = venv + "/bin/python"
        var steps: [[String]] = []
        if !FileManager.default.isExecutableFile(atPath: python) {
            steps.append(["/usr/bin/env", "python3", "-m", "venv", venv])
            steps.append([
                python, "-m", "pip", "--disable-pip-version-check", "-q", "install",
                TestPaths.packageRoot + "/clients/python",
            ])
        }
        steps.append([
            python, "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps", "--force-reinstall",
            TestPaths.packageRoot + "/clients/python",
        ])
        for step in steps {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: step[0])
            p.arguments = Array(step.dropFirst())
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("docs-venv-\(getpid()).log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            p.standardOutput = try FileHandle(forWritingTo: log)
            p.standardError = try FileHandle(forWritingTo: log)
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                let message =
                    "the docs' Python venv could not be made (\(step.joined(separator: " "))):\n\(text.suffix(2000))"
                if DocsTests.isCI { throw DaemonError(message) }
                throw XCTSkip(message)
            }
        }
        ready = venv + "/bin"
        return ready
    }
}
