import XCTest

/// The harness's own convention: how blocks are classified and how console output is compared.
final class HarnessTests: XCTestCase {
    func testBlocksAreClassifiedByLanguageAndDirective() {
        let md = """
            # T
            ```sh
            echo hi
            ```
            <!-- no-run: installs into /etc -->
            ```sh
            sudo make install
            ```
            <!-- no-run -->
            ```python
            import nothing
            ```
            ```
            a block without a language
            ```
            - a list item:

               ```console
               $ echo indented
               indented
               ```
            <!-- run: firestore -->
            ```text
            a diagram
            ```
            """
        let blocks = DocBlock.parse(md, file: "t.md")
        XCTAssertEqual(
            blocks.map(\.kind),
            [
                .shell, .skipped(reason: "installs into /etc"), .skipped(reason: ""), .unmarked(info: ""), .console,
                .illustration,
            ])
        XCTAssertEqual(blocks.map(\.line), [2, 6, 10, 13, 18, 23])
        XCTAssertEqual(blocks[4].text, "$ echo indented\nindented")
        XCTAssertTrue(blocks[5].needsFirestore)
    }

    func testTranscriptStepsAndContinuations() {
        let block = DocBlock(
            file: "t.md", line: 1, info: "console",
            text: "$ a \\\n  --b\nout 1\nout 2\n$ c\n", kind: .console)
        let t = Transcript(block)
        XCTAssertEqual(t.steps.map(\.command), ["a \\\n  --b", "c"])
        XCTAssertEqual(t.steps.map(\.expected), [["out 1", "out 2"], [""]])
        XCTAssertEqual(t.steps.map(\.line), [2, 6])
    }

    func testOutputMatching() {
        func m(_ expected: String, _ actual: String) -> Bool {
            Transcript.matches(
                expected: expected.split(separator: "\n", omittingEmptySubsequences: false).map(String.init),
                actual: actual)
        }
        XCTAssertTrue(m("exit 4", "exit 4\n"))
        XCTAssertFalse(m("exit 4", "exit 5\n"))
        XCTAssertTrue(m("round trip … ms, up …", "round trip 0.183 ms, up 2s"))
        XCTAssertTrue(m("TIME   ID", "TIME       ID"), "runs of spaces")
        XCTAssertTrue(
            m(
                "2026-11-26 10:27:13  mem_469b8b01-1ab8-45a3-91aa-043f5b5d7cfc",
                "2031-01-02 03:04:05  mem_00000000-1111-4222-8333-444444444444"))
        XCTAssertFalse(m("mem_469b8b01-1ab8-45a3-91aa-043f5b5d7cfc s1", "mem_00000000-1111-4222-8333-444444444444 s2"))
        XCTAssertTrue(m("first\n...\nlast", "first\na\nb\nlast\n"))
        XCTAssertTrue(m("first\n...\nlast", "first\nlast"))
        XCTAssertFalse(m("first\n...\nlast", "first\na\nb\n"))
        XCTAssertTrue(m("{\"a\": [1, 2]} (x)?", "{\"a\": [1, 2]} (x)?"), "regex characters are literal")
        XCTAssertFalse(m("a.c", "abc"))
        XCTAssertFalse(m("", "unexpected output"))
    }
}
