import MemoryDomain
import MemoryUtilities

/// Builders for `documents:runQuery` bodies (`google.firestore.v1.StructuredQuery` in its JSON form).
enum StructuredQuery {
    static func field(_ path: String) -> JSONValue { .object(["fieldPath": .string(path)]) }

    /// `path == value`; a JSON null becomes `IS_NULL`.
    static func equal(_ path: String, _ value: JSONValue) -> JSONValue {
        if value == .null {
            return .object(["unaryFilter": .object(["field": field(path), "op": .string("IS_NULL")])])
        }
        return compare(path, "EQUAL", FirestoreValue.encode(value))
    }

    static func compare(_ path: String, _ op: String, _ firestoreValue: JSONValue) -> JSONValue {
        .object(["fieldFilter": .object(["field": field(path), "op": .string(op), "value": firestoreValue])])
    }

    /// The conjunction of filters, or nil for none.
    static func and(_ filters: [JSONValue]) -> JSONValue? {
        switch filters.count {
        case 0: return nil
        case 1: return filters[0]
        default: return .object(["compositeFilter": .object(["op": .string("AND"), "filters": .array(filters)])])
        }
    }

    static func order(_ path: String, descending: Bool) -> JSONValue {
        .object(["field": field(path), "direction": .string(descending ? "DESCENDING" : "ASCENDING")])
    }

    /// A query on one collection. `startAfter` holds the values of the order-by fields of the last row seen.
    static func query(
        collection: String, filters: [JSONValue], orderBy: [JSONValue] = [], startAfter: [JSONValue]? = nil,
        limit: Int? = nil, selectNameOnly: Bool = false
    ) -> JSONValue {
        var q: [String: JSONValue] = ["from": .array([.object(["collectionId": .string(collection)])])]
        if let w = and(filters) { q["where"] = w }
        if !orderBy.isEmpty { q["orderBy"] = .array(orderBy) }
        if let startAfter { q["startAt"] = .object(["values": .array(startAfter), "before": .bool(false)]) }
        if let limit { q["limit"] = .number(Double(limit)) }
        if selectNameOnly { q["select"] = .object(["fields": .array([field("__name__")])]) }
        return .object(["structuredQuery": .object(q)])
    }

    /// A nearest-neighbour query (`findNearest`) on the `embedding` field with prefilters.
    static func nearest(
        collection: String, filters: [JSONValue], vector: [Float], measure: DistanceMeasure, limit: Int,
        distanceThreshold: Double?
    ) -> JSONValue {
        var fn: [String: JSONValue] = [
            "vectorField": field("embedding"),
            "queryVector": FirestoreValue.vector(vector),
            "distanceMeasure": .string(measureName(measure)),
            "limit": .number(Double(limit)),
            "distanceResultField": .string(DocumentMapping.distanceField),
        ]
        if let distanceThreshold { fn["distanceThreshold"] = .number(distanceThreshold) }
        var q: [String: JSONValue] = [
            "from": .array([.object(["collectionId": .string(collection)])]), "findNearest": .object(fn),
        ]
        if let w = and(filters) { q["where"] = w }
        return .object(["structuredQuery": .object(q)])
    }

    static func measureName(_ m: DistanceMeasure) -> String {
        switch m {
        case .cosine: "COSINE"
        case .dotProduct: "DOT_PRODUCT"
        case .euclidean: "EUCLIDEAN"
        }
    }

    /// The documents of a runQuery answer (a JSON array of `{document?, readTime, skippedResults?, done?}`).
    static func documents(_ response: JSONValue) -> [JSONValue] {
        (response.arrayValue ?? []).compactMap { $0["document"] }
    }
}

/// Distances of `findNearest` and SPEC §5 scores. Checked against the emulator: COSINE answers the cosine
/// distance 1 - cos (0...2), DOT_PRODUCT the dot product itself (higher is nearer), EUCLIDEAN the
/// distance sqrt(Σ(a-b)²). `distanceThreshold` keeps distance ≤ threshold for COSINE/EUCLIDEAN and
/// dot product ≥ threshold for DOT_PRODUCT, bounds included.
enum VectorScore {
    static func score(distance: Double, measure: DistanceMeasure) -> Double {
        switch measure {
        case .cosine: 1 - distance
        case .dotProduct: distance
        case .euclidean: -distance
        }
    }

    /// The `distanceThreshold` that keeps every result whose score is ≥ `minScore` (slightly loose, so
    /// rounding never drops a result; the exact test is done on the scores). Nil when no result can pass.
    static func threshold(minScore: Double, measure: DistanceMeasure) -> Double? {
        let slack = 1e-9
        switch measure {
        case .cosine: return minScore > 1 + slack ? nil : 1 - minScore + slack
        case .dotProduct: return minScore - slack
        case .euclidean: return minScore > slack ? nil : -minScore + slack
        }
    }
}
