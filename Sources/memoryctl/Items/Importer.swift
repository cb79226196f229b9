import MemoryClient
import MemoryDomain
import MemoryUtilities

/// Ids for lines that have none: `imp_` + the first 32 hex digits of the SHA-256 of the line's fields
/// (canonical JSON, sorted keys, before a timestamp is assigned) and of how often the same fields came
/// before in this file. The same file gives the same ids on every run; editing one line changes only its id.
struct DerivedIDs {
    private var seen: [String: Int] = [:]

    mutating func id(for fields: JSONValue) -> String {
        let canonical = fields.serialized()
        let occurrence = seen[canonical, default: 0]
        seen[canonical] = occurrence + 1
        return "imp_" + SHA256.hexDigest(canonical + "\n\(occurrence)").prefix(32)
    }
}

/// Sends what `import` read: items in chunks, agent data one by one; counts and reports the outcome.
struct Importer {
    struct Failure {
        var line: Int
        var error: MemoryError
    }

    let client: MemoryClient
    let console: Console
    let upsert: Bool
    let skipExisting: Bool
    let progress: Bool
    var imported = 0
    var present = 0
    var failures: [Failure] = []

    /// Where an entry came from: its line, whether its id was derived, whether it had a timestamp.
    struct Origin {
        var line: Int
        var derivedID: Bool
        var timed: Bool
        var size = 0
    }

    private var chunk: [MemoryItem] = []
    private var chunkOrigins: [Origin] = []
    private var chunkBytes = 0

    init(client: MemoryClient, console: Console, upsert: Bool, skipExisting: Bool) {
        self.client = client
        self.console = console
        self.upsert = upsert
        self.skipExisting = skipExisting
        self.progress = !console.json && console.stderrIsTerminal
    }

    mutating func fail(_ line: Int, _ error: MemoryError) {
        failures.append(Failure(line: line, error: error))
        if !console.json {
            clearProgress()
            console.err("line \(line): \(error.name): \(error.message)")
        }
    }

    /// A line's outcome: imported, already present, or failed. A duplicate id is already present when the id
    /// was derived from the content, with --skip-existing, or when `sameAsStored` says the stored entry is
    /// what the line holds (re-importing an export).
    private mutating func record(
        _ origin: Origin, _ error: MemoryError?, unchanged: Bool = false,
        sameAsStored: () throws(MemoryError) -> Bool
    ) throws(MemoryError) {
        guard let error else {
            // The daemon says so itself when the item was stored already, exactly so.
            if unchanged { present += 1 } else { imported += 1 }
            return
        }
        var isPresent = error.type == .duplicate && (origin.derivedID || skipExisting)
        if error.type == .duplicate && !isPresent { isPresent = try sameAsStored() }
        if isPresent {
            present += 1
        } else {
            fail(origin.line, error)
        }
    }

    mutating func add(_ item: MemoryItem, _ origin: Origin, chunkSize: Int) throws(MemoryError) {
        if !chunk.isEmpty && (chunk.count >= chunkSize || chunkBytes + origin.size > ImportItems.chunkBytes) {
            try flush()
        }
        chunk.append(item)
        chunkOrigins.append(origin)
        chunkBytes += origin.size
    }

    /// AddRawAgentData cannot replace: with --upsert an existing agent data id counts as present.
    mutating func add(_ data: AgentData, _ origin: Origin) throws(MemoryError) {
        let client = self.client
        // Stored already, exactly so (a re-run): present, without writing. (A write would succeed too, as a
        // retry, but could not say it changed nothing.)
        if !data.id.isEmpty,
            Self.same(data, origin, as: try Self.stored { () throws(MemoryError) in try client.getAgentData(data.id) })
        {
            present += 1
            showProgress()
            return
        }
        var outcome: MemoryError?
        do {
            _ = try client.addRawAgentData(data)
        } catch  where error.type != .unspecified {
            outcome = error
        } catch {
            stopped(at: origin.line)
            throw error
        }
        let upsert = self.upsert
        try record(origin, outcome) { () throws(MemoryError) -> Bool in
            if upsert { return true }
            return Self.same(
                data, origin, as: try Self.stored { () throws(MemoryError) in try client.getAgentData(data.id) })
        }
        showProgress()
    }

    /// The stored entry, nil when it is gone (expired) by now.
    private static func stored<T>(_ get: () throws(MemoryError) -> T) throws(MemoryError) -> T? {
        do { return try get() } catch  where error.type == .notFound { return nil }
    }

    /// True when `stored` holds what the line gave (the daemon's defaults and content_hash aside).
    static func same(_ line: MemoryItem, _ origin: Origin, as stored: MemoryItem?) -> Bool {
        guard let stored else { return false }
        var expected = line
        if expected.itemType.isEmpty { expected.itemType = "conversation" }
        if expected.metadata["content_hash"] == nil {
            expected.metadata["content_hash"] = stored.metadata["content_hash"]
        }
        if !origin.timed { expected.timestamp = stored.timestamp }
        return expected == stored
    }

    static func same(_ line: AgentData, _ origin: Origin, as stored: AgentData?) -> Bool {
        guard let stored else { return false }
        var expected = line
        if !origin.timed { expected.timestamp = stored.timestamp }
        return expected == stored
    }

    mutating func flush() throws(MemoryError) {
        guard !chunk.isEmpty else { return }
        defer {
            chunk.removeAll(keepingCapacity: true)
            chunkOrigins.removeAll(keepingCapacity: true)
            chunkBytes = 0
        }
        let results: [ItemResult]
        do {
            results = try client.addMemoryItems(chunk, upsert: upsert)
        } catch  where error.type != .unspecified {
            // The request as a whole was refused: every item of it failed for that reason.
            for origin in chunkOrigins { fail(origin.line, error) }
            return
        } catch {
            stopped(at: chunkOrigins.first?.line ?? 0)
            throw error
        }
        let client = self.client
        for (i, r) in results.enumerated() where i < chunkOrigins.count {
            var e = r.error
            // The daemon names the item by its index in the chunk; the line number says more.
            if let m = e?.message { e?.message = ImportItems.withoutItemIndex(m) }
            let item = chunk[i]
            let origin = chunkOrigins[i]
            try record(origin, e, unchanged: r.unchanged) { () throws(MemoryError) -> Bool in
                Self.same(
                    item, origin, as: try Self.stored { () throws(MemoryError) in try client.getMemoryItem(item.id) })
            }
        }
        showProgress()
    }

    private func stopped(at line: Int) {
        clearProgress()
        console.err(
            "import stopped at line \(line): imported \(imported), already present \(present), failed \(failures.count) so far"
        )
    }

    private func showProgress() {
        guard progress else { return }
        Console.write(
            2, "\r\u{1B}[Kimporting: \(imported) imported, \(present) already present, \(failures.count) failed")
    }

    func clearProgress() {
        if progress { Console.write(2, "\r\u{1B}[K") }
    }
}
