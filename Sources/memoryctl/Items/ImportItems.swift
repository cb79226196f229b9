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
        abstract: "Add the memory items and agent data of a JSON Lines file (what export writes).",
        discussion: """
            Each line is one MemoryItem or one AgentData as JSON, with the field names of \
            `memoryctl get --json` and `memoryctl agent-data get --json`; a line with agent_id is \
            agent data. Blank lines are skipped.

            Re-running is safe. A line without an id gets one derived from its content (imp_ + \
            SHA-256 of the line's fields; the second identical line of a file gets another). A line \
            whose id exists is already present, and skipped, when the stored entry holds what the \
            line holds (re-importing an export), when its id was derived, or with --skip-existing; \
            else it fails (DuplicateError) unless --upsert replaces it (agent data cannot be \
            replaced: with --upsert an existing id counts as present). Lines without a timestamp get \
            increasing ones in file order (the first line is the oldest), so history shows them in \
            the file's order.

            Items go to memoryd in chunks (AddMemoryItems), agent data one by one. A line that is \
            not valid JSON, or that the daemon refuses, is reported with its line number and the \
            import goes on. The summary is "imported N, already present M, failed K"; the exit \
            status is 0 only when nothing failed, else the exit code of the first failure (3 for a \
            bad line). Progress is shown on stderr when it is a terminal.

            Example:
              memoryctl import memories.jsonl
              zcat backup.jsonl.gz | memoryctl import - --skip-existing
            """)

    @OptionGroup(title: "Global Options") var globals: GlobalOptions
    @Argument(help: ArgumentHelp("The JSON Lines file, or - for stdin.", valueName: "file.jsonl")) var file: String
    @Flag(help: "Replace items and agent data whose id exists.") var upsert = false
    @Flag(help: "Skip lines whose id exists instead of failing.") var skipExisting = false
    @Option(help: "Items per AddMemoryItems call.") var chunkSize: Int = 500

    func validate() throws {
        guard (1...10_000).contains(chunkSize) else {
            throw ValidationError("--chunk-size must be 1 to 10000, not \(chunkSize)")
        }
        if upsert && skipExisting { throw ValidationError("--upsert and --skip-existing exclude each other") }
    }

    /// A chunk is also cut at about this many encoded bytes, well below the default max_frame_bytes.
    static let chunkBytes = 2 * 1024 * 1024

    func run() throws {
        var firstFailure: MemoryError?
        try globals.run { console in
            guard let reader = LineReader(path: file) else {
                throw UsageFailure("cannot read \(file): \(String(cString: strerror(errno)))")
            }
            let client = try globals.connect()
            defer { client.close() }
            var importer = Importer(
                client: client, console: console, upsert: upsert, skipExisting: skipExisting)
            var derived = DerivedIDs()
            // Lines without a timestamp: this instant, one microsecond more per line, in file order.
            let start = Timestamp.now()
            var untimed: Int64 = 0
            func nextTime() -> Timestamp {
                defer { untimed += 1 }
                return Timestamp(microseconds: start.microseconds + untimed)
            }

            while let line = reader.next() {
                let number = reader.lineNumber
                if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
                let entry: JSONForms.Entry
                do {
                    entry = try JSONForms.parseEntry(try JSONValue.parse(line))
                } catch let e as JSONParseError {
                    importer.fail(number, .validation("not valid JSON: \(e)"))
                    continue
                } catch let e as MemoryError {
                    importer.fail(number, e)
                    continue
                }
                switch entry {
                case .item(var item):
                    var origin = Importer.Origin(line: number, derivedID: item.id.isEmpty, timed: item.timestamp != nil)
                    if origin.derivedID { item.id = derived.id(for: JSONForms.item(item)) }
                    if !origin.timed { item.timestamp = nextTime() }
                    origin.size = line.utf8.count
                    try importer.add(item, origin, chunkSize: chunkSize)
                case .agentData(var data):
                    let origin = Importer.Origin(line: number, derivedID: data.id.isEmpty, timed: data.timestamp != nil)
                    if origin.derivedID { data.id = derived.id(for: JSONForms.agentData(data)) }
                    if !origin.timed { data.timestamp = nextTime() }
                    try importer.add(data, origin)
                }
            }
            try importer.flush()
            importer.clearProgress()
            firstFailure = importer.failures.first?.error

            if console.json {
                console.document(
                    .object([
                        "imported": .number(Double(importer.imported)),
                        "already_present": .number(Double(importer.present)),
                        "failed": .number(Double(importer.failures.count)),
                        "failures": .array(
                            importer.failures.map {
                                .object([
                                    "line": .number(Double($0.line)), "error": .string($0.error.name),
                                    "code": .number(Double($0.error.code.rawValue)),
                                    "message": .string($0.error.message),
                                ])
                            }),
                    ]))
            } else {
                console.out(
                    "imported \(importer.imported), already present \(importer.present), failed \(importer.failures.count)"
                )
            }
        }
        if let firstFailure { throw ExitCode(ExitStatus.code(for: firstFailure)) }
    }

    /// `items[3].user_id is required` → `user_id is required`.
    static func withoutItemIndex(_ message: String) -> String {
        guard message.hasPrefix("items["), let close = message.firstIndex(of: "]") else { return message }
        var rest = message[message.index(after: close)...]
        if rest.first == "." { rest = rest.dropFirst() }
        return rest.isEmpty ? message : String(rest)
    }
}
