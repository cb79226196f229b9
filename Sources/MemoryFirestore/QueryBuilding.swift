import CFirestoreProto
import MemoryDomain
import MemoryUtilities

/// Building `google.firestore.v1.StructuredQuery` and the requests of the four methods into protobuf-c structs.
extension ProtoArena {
    typealias FilterOperator = Google__Firestore__V1__StructuredQuery__FieldFilter__Operator

    func fieldReference(_ path: String) -> UnsafeMutablePointer<FSFieldReference> {
        let f = message(FSFieldReference.self, google__firestore__v1__structured_query__field_reference__init)
        f.pointee.field_path = string(path)
        return f
    }

    /// `path == value`; a JSON null becomes `IS_NULL`.
    func equal(_ path: String, _ value: JSONValue) -> UnsafeMutablePointer<FSFilter> {
        if value == .null {
            let u = message(
                Google__Firestore__V1__StructuredQuery__UnaryFilter.self,
                google__firestore__v1__structured_query__unary_filter__init)
            u.pointee.op = GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__UNARY_FILTER__OPERATOR__IS_NULL
            u.pointee.operand_type_case = GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__UNARY_FILTER__OPERAND_TYPE_FIELD
            u.pointee.field = fieldReference(path)
            let f = message(FSFilter.self, google__firestore__v1__structured_query__filter__init)
            f.pointee.filter_type_case = GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FILTER__FILTER_TYPE_UNARY_FILTER
            f.pointee.unary_filter = u
            return f
        }
        return compare(path, GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FIELD_FILTER__OPERATOR__EQUAL, jsonValue(value))
    }

    func compare(_ path: String, _ op: FilterOperator, _ value: UnsafeMutablePointer<FSValue>)
        -> UnsafeMutablePointer<FSFilter>
    {
        let ff = message(
            Google__Firestore__V1__StructuredQuery__FieldFilter.self,
            google__firestore__v1__structured_query__field_filter__init)
        ff.pointee.field = fieldReference(path)
        ff.pointee.op = op
        ff.pointee.value = value
        let f = message(FSFilter.self, google__firestore__v1__structured_query__filter__init)
        f.pointee.filter_type_case = GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FILTER__FILTER_TYPE_FIELD_FILTER
        f.pointee.field_filter = ff
        return f
    }

    /// The conjunction of filters, or nil for none.
    func and(_ filters: [UnsafeMutablePointer<FSFilter>]) -> UnsafeMutablePointer<FSFilter>? {
        switch filters.count {
        case 0: return nil
        case 1: return filters[0]
        default:
            let c = message(
                Google__Firestore__V1__StructuredQuery__CompositeFilter.self,
                google__firestore__v1__structured_query__composite_filter__init)
            c.pointee.op = GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__COMPOSITE_FILTER__OPERATOR__AND
            c.pointee.n_filters = filters.count
            c.pointee.filters = array(filters) { $0 }
            let f = message(FSFilter.self, google__firestore__v1__structured_query__filter__init)
            f.pointee.filter_type_case = GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FILTER__FILTER_TYPE_COMPOSITE_FILTER
            f.pointee.composite_filter = c
            return f
        }
    }

    func order(_ path: String, descending: Bool) -> UnsafeMutablePointer<FSOrder> {
        let o = message(FSOrder.self, google__firestore__v1__structured_query__order__init)
        o.pointee.field = fieldReference(path)
        o.pointee.direction =
            descending
            ? GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__DIRECTION__DESCENDING
            : GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__DIRECTION__ASCENDING
        return o
    }

    /// A query on one collection.
    /// - Parameters:
    ///   - startAfter: the values of the order-by fields of the last row seen (a keyset cursor).
    ///   - select: the fields to return (a projection); nil for whole documents.
    func query(
        collection: String, filters: [UnsafeMutablePointer<FSFilter>], orderBy: [UnsafeMutablePointer<FSOrder>] = [],
        startAfter: [UnsafeMutablePointer<FSValue>]? = nil, limit: Int? = nil, select: [String]? = nil
    ) -> UnsafeMutablePointer<FSQuery> {
        let q = message(FSQuery.self, google__firestore__v1__structured_query__init)
        let from = message(
            Google__Firestore__V1__StructuredQuery__CollectionSelector.self,
            google__firestore__v1__structured_query__collection_selector__init)
        from.pointee.collection_id = string(collection)
        q.pointee.n_from = 1
        q.pointee.from = array([from]) { $0 }
        q.pointee.`where` = and(filters)
        q.pointee.n_order_by = orderBy.count
        q.pointee.order_by = array(orderBy) { $0 }
        if let startAfter {
            let c = message(FSCursor.self, google__firestore__v1__cursor__init)
            c.pointee.n_values = startAfter.count
            c.pointee.values = array(startAfter) { $0 }
            c.pointee.before = 0
            q.pointee.start_at = c
        }
        if let limit { q.pointee.limit = int32(limit) }
        if let select { q.pointee.select = projection(select) }
        return q
    }

    func projection(_ paths: [String]) -> UnsafeMutablePointer<Google__Firestore__V1__StructuredQuery__Projection> {
        let p = message(
            Google__Firestore__V1__StructuredQuery__Projection.self,
            google__firestore__v1__structured_query__projection__init)
        p.pointee.n_fields = paths.count
        p.pointee.fields = array(paths) { fieldReference($0) }
        return p
    }

    func int32(_ n: Int) -> UnsafeMutablePointer<Google__Protobuf__Int32Value> {
        let v = message(Google__Protobuf__Int32Value.self, google__protobuf__int32_value__init)
        v.pointee.value = Int32(clamping: n)
        return v
    }

    /// A nearest-neighbour query (`find_nearest`) on the `embedding` field with prefilters; the distance of
    /// each result comes back in `DocumentDecoding.distanceField`.
    func nearest(
        collection: String, filters: [UnsafeMutablePointer<FSFilter>], vector: [Float], measure: DistanceMeasure,
        limit: Int, distanceThreshold: Double?, select: [String]?
    ) -> UnsafeMutablePointer<FSQuery> {
        let q = query(collection: collection, filters: filters, select: select)
        let fn = message(
            Google__Firestore__V1__StructuredQuery__FindNearest.self,
            google__firestore__v1__structured_query__find_nearest__init)
        fn.pointee.vector_field = fieldReference("embedding")
        fn.pointee.query_vector = vectorValue(vector)
        fn.pointee.distance_measure =
            switch measure {
            case .cosine: GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FIND_NEAREST__DISTANCE_MEASURE__COSINE
            case .dotProduct: GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FIND_NEAREST__DISTANCE_MEASURE__DOT_PRODUCT
            case .euclidean: GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FIND_NEAREST__DISTANCE_MEASURE__EUCLIDEAN
            }
        fn.pointee.limit = int32(limit)
        fn.pointee.distance_result_field = string(DocumentDecoding.distanceField)
        if let distanceThreshold {
            let d = message(Google__Protobuf__DoubleValue.self, google__protobuf__double_value__init)
            d.pointee.value = distanceThreshold
            fn.pointee.distance_threshold = d
        }
        q.pointee.find_nearest = fn
        return q
    }

    // MARK: - Requests

    func runQueryRequest(parent: String, _ query: UnsafeMutablePointer<FSQuery>) -> [UInt8] {
        let r = message(Google__Firestore__V1__RunQueryRequest.self, google__firestore__v1__run_query_request__init)
        r.pointee.parent = string(parent)
        r.pointee.query_type_case = GOOGLE__FIRESTORE__V1__RUN_QUERY_REQUEST__QUERY_TYPE_STRUCTURED_QUERY
        r.pointee.structured_query = query
        return Self.framed(r)
    }

    func batchGetRequest(database: String, names: [String], mask: [String]? = nil) -> [UInt8] {
        let r = message(
            Google__Firestore__V1__BatchGetDocumentsRequest.self,
            google__firestore__v1__batch_get_documents_request__init)
        r.pointee.database = string(database)
        r.pointee.n_documents = names.count
        r.pointee.documents = array(names, string)
        if let mask { r.pointee.mask = documentMask(mask) }
        return Self.framed(r)
    }

    func commitRequest(database: String, writes: [UnsafeMutablePointer<FSWrite>]) -> [UInt8] {
        let r = message(Google__Firestore__V1__CommitRequest.self, google__firestore__v1__commit_request__init)
        r.pointee.database = string(database)
        r.pointee.n_writes = writes.count
        r.pointee.writes = array(writes) { $0 }
        return Self.framed(r)
    }

    func batchWriteRequest(database: String, writes: [UnsafeMutablePointer<FSWrite>]) -> [UInt8] {
        let r = message(Google__Firestore__V1__BatchWriteRequest.self, google__firestore__v1__batch_write_request__init)
        r.pointee.database = string(database)
        r.pointee.n_writes = writes.count
        r.pointee.writes = array(writes) { $0 }
        return Self.framed(r)
    }
}

/// Field paths for queries: each segment bare when it is a simple name, else back-quoted.
enum FieldPath {
    static func of(_ segments: [String]) -> String {
        segments.map { s in
            let simple =
                !s.isEmpty
                && s.utf8.allSatisfy { c in
                    (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F
                } && !(s.utf8.first! >= 0x30 && s.utf8.first! <= 0x39)
            if simple { return s }
            var quoted = "`"
            for ch in s {
                if ch == "\\" || ch == "`" { quoted.append("\\") }
                quoted.append(ch)
            }
            return quoted + "`"
        }.joined(separator: ".")
    }

    /// The fields of an item without `embedding` (history and search with exclude_embeddings).
    static let itemWithoutEmbedding = [
        "id", "user_id", "session_id", "item_type", "persona_active", "text_content", "timestamp", "expiration",
        "metadata",
    ]
}

/// Distances of `findNearest` and SPEC §5 scores. Checked against the emulator: COSINE answers the cosine
/// distance 1 - cos (0...2), DOT_PRODUCT the dot product itself (higher is nearer), EUCLIDEAN the
/// distance sqrt(Σ(a-b)²). `distance_threshold` keeps distance ≤ threshold for COSINE/EUCLIDEAN and
/// dot product ≥ threshold for DOT_PRODUCT, bounds included.
enum VectorScore {
    static func score(distance: Double, measure: DistanceMeasure) -> Double {
        switch measure {
        case .cosine: 1 - distance
        case .dotProduct: distance
        case .euclidean: -distance
        }
    }

    /// The `distance_threshold` that keeps every result whose score is ≥ `minScore` (slightly loose, so
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
