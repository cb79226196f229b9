import ArgumentParser
import MemoryClient
import MemoryDomain
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

struct ImportItems: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Add the memory items of a JSON Lines file.",
        discussion: """
            Each line is one MemoryItem as JSON with the field names of `memoryctl get --json` \
            (id, user_id, session_id, timestamp, item_type, persona_active, text_content, embedding, \
            metadata, expiration); blank lines are skipped. Items go to memoryd in chunks \
            (AddMemoryItems). A line that is not valid JSON, or an item the daemon refuses, is \
            reported with its line number and the import goes on. The summary line is \
            "imported N, failed M"; the exit status is 0 only when nothing failed, else the exit code \
            of the first failure (3 for a bad line). Progress is shown on stderr when it is a terminal.

            Example:
              memoryctl import memories.jsonl
              zcat backup.jsonl.gz | memoryctl import - --upsert
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions
    @Argument(help: ArgumentHelp("The JSON Lines file, or - for stdin.", valueName: "file.jsonl")) var file: String
    @Flag(help: "Replace items whose id exists.") var upsert = false
    @Option(help: "Items per AddMemoryItems call.") var chunkSize: Int = 500

    func validate() throws {
        guard (1...10_000).contains(chunkSize) else {
            throw ValidationError("--chunk-size must be 1 to 10000, not \(chunkSize)")
        }
    }

    /// A chunk is also cut at about this many encoded bytes, well below the default max_frame_bytes.
    static let chunkBytes = 2 * 1024 * 1024

    struct Failure {
        var line: Int
        var error: MemoryError
    }

    func run() throws {
        var failures: [Failure] = []
        try globals.run { console in
            guard let reader = LineReader(path: file) else {
                throw UsageFailure("cannot read \(file): \(String(cString: strerror(errno)))")
            }
            let client = try globals.connect()
            defer { client.close() }
            var imported = 0
            let progress = !console.json && console.stderrIsTerminal

            var chunk: [MemoryItem] = []
            var chunkLines: [Int] = []
            var chunkSizeBytes = 0

            func fail(_ line: Int, _ error: MemoryError) {
                failures.append(Failure(line: line, error: error))
                if !console.json {
                    if progress { Console.write(2, "\r\u{1B}[K") }
                    console.err("line \(line): \(error.name): \(error.message)")
                }
            }
            func send() throws(MemoryError) {
                guard !chunk.isEmpty else { return }
                defer {
                    chunk.removeAll(keepingCapacity: true)
                    chunkLines.removeAll(keepingCapacity: true)
                    chunkSizeBytes = 0
                }
                let results: [ItemResult]
                do {
                    results = try client.addMemoryItems(chunk, upsert: upsert)
                } catch  where error.type != .unspecified {
                    // The request as a whole was refused: every item of it failed for that reason.
                    for line in chunkLines { fail(line, error) }
                    return
                } catch {
                    if progress { Console.write(2, "\r\u{1B}[K") }
                    console.err(
                        "import stopped at line \(chunkLines.first ?? 0): imported \(imported), failed \(failures.count) so far"
                    )
                    throw error
                }
                for (i, r) in results.enumerated() where i < chunkLines.count {
                    if var e = r.error {
                        // The daemon names the item by its index in the chunk; the line number says more.
                        e.message = Self.withoutItemIndex(e.message)
                        fail(chunkLines[i], e)
                    } else {
                        imported += 1
                    }
                }
                if progress { Console.write(2, "\r\u{1B}[Kimporting: \(imported) imported, \(failures.count) failed") }
            }

            while let line = reader.next() {
                let number = reader.lineNumber
                if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
                let item: MemoryItem
                do {
                    let value = try JSONValue.parse(line)
                    item = try JSONForms.parseItem(value)
                } catch let e as JSONParseError {
                    fail(number, .validation("not valid JSON: \(e)"))
                    continue
                } catch let e as MemoryError {
                    fail(number, e)
                    continue
                }
                let size = line.utf8.count
                if !chunk.isEmpty && (chunk.count >= chunkSize || chunkSizeBytes + size > Self.chunkBytes) {
                    try send()
                }
                chunk.append(item)
                chunkLines.append(number)
                chunkSizeBytes += size
            }
            try send()
            if progress { Console.write(2, "\r\u{1B}[K") }

            if console.json {
                console.document(
                    .object([
                        "imported": .number(Double(imported)), "failed": .number(Double(failures.count)),
                        "failures": .array(
                            failures.map {
                                .object([
                                    "line": .number(Double($0.line)), "error": .string($0.error.name),
                                    "code": .number(Double($0.error.code.rawValue)),
                                    "message": .string($0.error.message),
                                ])
                            }),
                    ]))
            } else {
                console.out("imported \(imported), failed \(failures.count)")
            }
        }
        if let first = failures.first { throw ExitCode(ExitStatus.code(for: first.error)) }
    }

    /// `items[3].user_id is required` → `user_id is required`.
    static func withoutItemIndex(_ message: String) -> String {
        guard message.hasPrefix("items["), let close = message.firstIndex(of: "]") else { return message }
        var rest = message[message.index(after: close)...]
        if rest.first == "." { rest = rest.dropFirst() }
        return rest.isEmpty ? message : String(rest)
    }
}
