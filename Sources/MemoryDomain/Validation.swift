import MemoryUtilities

/// Limits of SPEC §4; anything past them is a ValidationError naming the field and the value.
public struct Limits: Sendable, Equatable {
    public var embeddingDimension: Int
    public var maxIDBytes = 256
    public var maxTextBytes = 512 * 1024
    public var maxItemBytes = 1024 * 1024
    public var maxMetadataDepth = 20
    public var maxBatchItems = 10_000
    public var maxLimit = 1000
    public var maxTopK = 1000

    public init(embeddingDimension: Int = 768) {
        self.embeddingDimension = embeddingDimension
    }

    public static let maxEmbeddingDimension = 2048
}

public enum Validation {
    /// Ids: 1...256 bytes of `[A-Za-z0-9_.:-]`, not `.`/`..`, not `__x__` (reserved by Firestore).
    public static func isValidID(_ id: String, maxBytes: Int = 256) -> Bool {
        let u = id.utf8
        guard !u.isEmpty, u.count <= maxBytes, id != ".", id != ".." else { return false }
        for c in u {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"),
                UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        if id.hasPrefix("__") && id.hasSuffix("__") && u.count >= 4 { return false }
        return true
    }

    /// Quoted and shortened for messages.
    public static func show(_ s: String, max: Int = 64) -> String {
        var out = ""
        JSONValue.writeString(s.count > max ? String(s.prefix(max)) + "…" : s, to: &out)
        return out
    }

    public static func checkID(_ id: String, field: String, limits: Limits) throws(MemoryError) {
        guard isValidID(id, maxBytes: limits.maxIDBytes) else {
            throw .validation(
                "\(field) \(show(id)) is not a valid id: use 1 to \(limits.maxIDBytes) bytes of [A-Za-z0-9_.:-]")
        }
    }

    /// Required free-form keys (user_id, agent_id, data_type): non-empty, ≤ 256 bytes, no control characters.
    public static func checkKey(_ value: String, field: String, required: Bool, limits: Limits) throws(MemoryError) {
        if value.isEmpty {
            if required { throw .validation("\(field) is required") }
            return
        }
        guard value.utf8.count <= limits.maxIDBytes else {
            throw .validation("\(field) is \(value.utf8.count) bytes; the limit is \(limits.maxIDBytes)")
        }
        guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw .validation("\(field) \(show(value)) contains control characters")
        }
    }

    public static func checkEmbedding(_ e: [Float], field: String, limits: Limits, required: Bool) throws(MemoryError) {
        if e.isEmpty {
            if required { throw .validation("\(field) is empty; expected \(limits.embeddingDimension) values") }
            return
        }
        guard e.count == limits.embeddingDimension else {
            throw .validation("\(field) has \(e.count) values; expected \(limits.embeddingDimension)")
        }
        if let bad = e.firstIndex(where: { !$0.isFinite }) {
            throw .validation("\(field)[\(bad)] is \(e[bad]); values must be finite")
        }
    }

    public static func checkMetadata(_ m: [String: JSONValue], field: String, limits: Limits) throws(MemoryError) {
        let depth = JSONValue.object(m).depth
        guard depth <= limits.maxMetadataDepth else {
            throw .validation("\(field) is nested \(depth) levels deep; the limit is \(limits.maxMetadataDepth)")
        }
        try checkFinite(.object(m), path: field)
    }

    private static func checkFinite(_ v: JSONValue, path: String) throws(MemoryError) {
        switch v {
        case .number(let n) where !n.isFinite: throw .validation("\(path) is \(n); numbers must be finite")
        case .array(let a): for (i, x) in a.enumerated() { try checkFinite(x, path: "\(path)[\(i)]") }
        case .object(let o):
            for (k, x) in o {
                if k.isEmpty { throw .validation("\(path) has an empty key") }
                try checkFinite(x, path: "\(path).\(k)")
            }
        default: break
        }
    }

    public static func checkTimestamp(_ t: Timestamp?, field: String) throws(MemoryError) {
        if let t, !t.isValid {
            throw .validation("\(field) (seconds \(t.seconds), nanos \(t.nanos)) is outside 0001-01-01..9999-12-31")
        }
    }

    /// An upper bound of the item's encoded size (protobuf plus metadata as JSON).
    public static func estimatedSize(_ item: MemoryItem) -> Int {
        item.id.utf8.count + item.userID.utf8.count + item.sessionID.utf8.count + item.itemType.utf8.count
            + item.personaActive.utf8.count + item.textContent.utf8.count + item.embedding.count * 4
            + JSONValue.object(item.metadata).serialized().utf8.count + 64
    }
}
