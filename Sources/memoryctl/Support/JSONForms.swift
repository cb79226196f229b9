import MemoryDomain
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// The JSON forms of SPEC §4: the field names of the protos, times in RFC 3339 UTC. `memoryctl --json`
/// prints them and `memoryctl import` reads them, so an export can be imported again.
enum JSONForms {
    static func float(_ f: Float) -> JSONValue {
        // Through the Float's shortest text, so 0.1 prints as 0.1, not 0.10000000149011612.
        .number(Double("\(f)") ?? Double(f))
    }

    static func time(_ ts: Timestamp?) -> JSONValue { ts.map { .string($0.rfc3339) } ?? .null }

    static func item(_ item: MemoryItem) -> JSONValue {
        .object([
            "id": .string(item.id),
            "user_id": .string(item.userID),
            "session_id": .string(item.sessionID),
            "timestamp": time(item.timestamp),
            "item_type": .string(item.itemType),
            "persona_active": .string(item.personaActive),
            "text_content": .string(item.textContent),
            "embedding": .array(item.embedding.map(float)),
            "metadata": .object(item.metadata),
            "expiration": time(item.expiration),
        ])
    }

    static func agentData(_ d: AgentData) -> JSONValue {
        .object([
            "id": .string(d.id),
            "agent_id": .string(d.agentID),
            "timestamp": time(d.timestamp),
            "data_type": .string(d.dataType),
            "content": d.content ?? .null,
            "metadata": .object(d.metadata),
            "expiration": time(d.expiration),
        ])
    }

    static let itemFields = [
        "id", "user_id", "session_id", "timestamp", "item_type", "persona_active", "text_content",
        "embedding", "metadata", "expiration",
    ]
    static let agentDataFields = ["id", "agent_id", "timestamp", "data_type", "content", "metadata", "expiration"]

    /// One line of an export: agent data when it has `agent_id` (a MemoryItem never does), else a MemoryItem.
    enum Entry {
        case item(MemoryItem)
        case agentData(AgentData)
    }

    static func parseEntry(_ value: JSONValue) throws(MemoryError) -> Entry {
        if case .object(let o) = value, o["agent_id"] != nil { return .agentData(try parseAgentData(value)) }
        return .item(try parseItem(value))
    }

    /// A MemoryItem from its JSON form. Unknown fields are refused, so that a typo (`text` for
    /// `text_content`) fails loudly instead of importing empty items.
    static func parseItem(_ value: JSONValue) throws(MemoryError) -> MemoryItem {
        let f = try Fields(value, kind: "a MemoryItem", known: itemFields)
        var item = MemoryItem()
        item.id = try f.string("id")
        item.userID = try f.string("user_id")
        item.sessionID = try f.string("session_id")
        item.timestamp = try f.time("timestamp")
        item.itemType = try f.string("item_type")
        item.personaActive = try f.string("persona_active")
        item.textContent = try f.string("text_content")
        item.expiration = try f.time("expiration")
        switch f.o["embedding"] {
        case nil, .null: break
        case .array(let a):
            item.embedding.reserveCapacity(a.count)
            for (i, v) in a.enumerated() {
                guard case .number(let n) = v else {
                    throw .validation("embedding[\(i)] must be a number, not \(kind(v))")
                }
                item.embedding.append(Float(n))
            }
        case let v?: throw .validation("embedding must be an array of numbers, not \(kind(v))")
        }
        item.metadata = try f.metadata()
        return item
    }

    /// AgentData from its JSON form (`memoryctl agent-data get --json`); unknown fields are refused.
    static func parseAgentData(_ value: JSONValue) throws(MemoryError) -> AgentData {
        let f = try Fields(value, kind: "AgentData", known: agentDataFields)
        var d = AgentData()
        d.id = try f.string("id")
        d.agentID = try f.string("agent_id")
        d.dataType = try f.string("data_type")
        d.timestamp = try f.time("timestamp")
        d.expiration = try f.time("expiration")
        d.content = f.o["content"].flatMap { $0 == .null ? nil : $0 }
        d.metadata = try f.metadata()
        return d
    }

    /// The fields of one JSON object, read with the type checks every form shares.
    private struct Fields {
        let o: [String: JSONValue]

        init(_ value: JSONValue, kind what: String, known: [String]) throws(MemoryError) {
            guard case .object(let o) = value else {
                throw .validation("expected a JSON object (\(what)), not \(JSONForms.kind(value))")
            }
            for key in o.keys.sorted() where !known.contains(key) {
                throw .validation(
                    "unknown field \(Validation.show(key)); \(what) has the fields \(known.joined(separator: ", "))")
            }
            self.o = o
        }

        func string(_ key: String) throws(MemoryError) -> String {
            switch o[key] {
            case nil, .null: return ""
            case .string(let s): return s
            case let v?: throw .validation("\(key) must be a string, not \(JSONForms.kind(v))")
            }
        }

        func time(_ key: String) throws(MemoryError) -> Timestamp? {
            switch o[key] {
            case nil, .null: return nil
            case .string(let s):
                guard let t = Timestamp(rfc3339: s) else {
                    throw .validation("\(key) \(Validation.show(s)) is not an RFC 3339 time")
                }
                return t
            case .number(let n):
                guard n.isFinite else { throw .validation("\(key) must be finite") }
                return Timestamp(microseconds: Int64(n * 1_000_000))
            case let v?: throw .validation("\(key) must be an RFC 3339 string, not \(JSONForms.kind(v))")
            }
        }

        func metadata() throws(MemoryError) -> [String: JSONValue] {
            switch o["metadata"] {
            case nil, .null: return [:]
            case .object(let m): return m
            case let v?: throw .validation("metadata must be an object, not \(JSONForms.kind(v))")
            }
        }
    }

    static func kind(_ v: JSONValue) -> String {
        switch v {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Parsing what people type: embeddings, `KEY=VALUE` pairs, JSON.
enum InputParsing {
    /// `0.1,0.2,0.3`, also `[0.1, 0.2]` or values separated by whitespace (what a file holds).
    static func embedding(_ text: String, source: String) throws(UsageFailure) -> [Float] {
        var out: [Float] = []
        var index = 0
        for part in text.split(whereSeparator: {
            $0 == "," || $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" || $0 == "[" || $0 == "]"
        }) {
            guard let f = Float(part) else {
                throw UsageFailure("\(source): value \(index + 1) \(Validation.show(String(part))) is not a number")
            }
            out.append(f)
            index += 1
        }
        guard !out.isEmpty else { throw UsageFailure("\(source) is empty: give comma-separated numbers") }
        return out
    }

    /// The embedding of `--embedding CSV` or `--embedding-file FILE`; nil when neither is given.
    static func embedding(csv: String?, file: String?) throws(UsageFailure) -> [Float]? {
        if csv != nil && file != nil { throw UsageFailure("give --embedding or --embedding-file, not both") }
        if let csv { return try embedding(csv, source: "--embedding") }
        if let file { return try embedding(try readFile(file), source: file) }
        return nil
    }

    /// `KEY=VALUE`: the value is JSON when it parses as JSON (`n=3`, `tags=["a"]`), else a string.
    static func pairs(_ pairs: [String], option: String) throws(UsageFailure) -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        for pair in pairs {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                throw UsageFailure("\(option) \(Validation.show(pair)) is not KEY=VALUE")
            }
            let key = String(pair[..<eq])
            let raw = String(pair[pair.index(after: eq)...])
            out[key] = (try? JSONValue.parse(raw)) ?? .string(raw)
        }
        return out
    }

    static func json(_ text: String, option: String) throws(UsageFailure) -> JSONValue {
        do {
            return try JSONValue.parse(text)
        } catch {
            throw UsageFailure("\(option) is not valid JSON: \(error) (quote strings: '\"text\"')")
        }
    }

    /// A whole file, or stdin for `-`.
    static func readFile(_ path: String) throws(UsageFailure) -> String {
        guard let reader = LineReader(path: path) else {
            throw UsageFailure("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        var text = ""
        while let line = reader.next() { text += line + "\n" }
        return text
    }
}
