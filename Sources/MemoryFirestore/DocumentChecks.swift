import CFirestoreProto
import MemoryDomain

/// Whether a stored document can be read as a memory item or agent data at all.
///
/// Documents written by the original memory manager differ from SPEC §9 in ways memoryd reads anyway: an
/// `embedding` that is a plain array of numbers (doubles or integers), optional fields missing or null,
/// `item_type: "message"`, no `metadata.content_hash`. What cannot be read is a field of the wrong type (a
/// `user_id` that is a number, an `embedding` holding a string, `metadata` that is a list) or a missing
/// `user_id` / `agent_id`: such a document is *malformed*. A get of it fails with a StorageError naming the
/// id and the field; listings, history and search leave it out and log a warning naming the id.
enum DocumentChecks {
    static let itemStrings: Set<String> = [
        "id", "user_id", "session_id", "item_type", "persona_active", "text_content",
    ]
    static let agentStrings: Set<String> = ["id", "agent_id", "data_type"]

    /// Why the document is not a readable memory item, or nil.
    static func itemProblem(_ doc: UnsafePointer<FSDocument>) -> String? {
        var problem: String?
        var hasUser = false
        DocumentDecoding.forEachField(doc) { key, v in
            guard problem == nil else { return }
            if itemStrings.contains(key) {
                problem = stringProblem(key, v)
                if key == "user_id", problem == nil, !DocumentDecoding.string(v).isEmpty { hasUser = true }
            } else if key == "timestamp" || key == "expiration" {
                problem = timestampProblem(key, v)
            } else if key == "metadata" {
                problem = mapProblem(key, v)
            } else if key == "embedding" {
                problem = embeddingProblem(v)
            }
        }
        if problem == nil && !hasUser { problem = "it has no user_id" }
        return problem
    }

    /// Why the document is not readable agent data, or nil. `content` may hold any value.
    static func agentDataProblem(_ doc: UnsafePointer<FSDocument>) -> String? {
        var problem: String?
        var hasAgent = false
        DocumentDecoding.forEachField(doc) { key, v in
            guard problem == nil else { return }
            if agentStrings.contains(key) {
                problem = stringProblem(key, v)
                if key == "agent_id", problem == nil, !DocumentDecoding.string(v).isEmpty { hasAgent = true }
            } else if key == "timestamp" || key == "expiration" {
                problem = timestampProblem(key, v)
            } else if key == "metadata" {
                problem = mapProblem(key, v)
            }
        }
        if problem == nil && !hasAgent { problem = "it has no agent_id" }
        return problem
    }

    /// The embedding's problem: nil for null, a vector value, or an array of numbers.
    static func embeddingProblem(_ v: UnsafePointer<FSValue>) -> String? {
        switch v.pointee.value_type_case {
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_NULL_VALUE:
            return nil
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_ARRAY_VALUE:
            guard let a = v.pointee.array_value, let values = a.pointee.values else { return nil }
            for i in 0..<a.pointee.n_values {
                guard let x = values[i], DocumentDecoding.number(x) != nil else {
                    return "embedding[\(i)] is \(typeName(values[i])), not a number"
                }
            }
            return nil
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_MAP_VALUE:
            return DocumentDecoding.vector(v) == nil ? "embedding is a map that is not a vector of numbers" : nil
        default:
            return "embedding is \(typeName(v)), not a vector or a list of numbers"
        }
    }

    static func stringProblem(_ key: String, _ v: UnsafePointer<FSValue>) -> String? {
        switch v.pointee.value_type_case {
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_STRING_VALUE, GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_NULL_VALUE:
            return nil
        default:
            return "\(key) is \(typeName(v)), not a string"
        }
    }

    static func timestampProblem(_ key: String, _ v: UnsafePointer<FSValue>) -> String? {
        switch v.pointee.value_type_case {
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_TIMESTAMP_VALUE,
            GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_NULL_VALUE:
            return nil
        default:
            return "\(key) is \(typeName(v)), not a timestamp"
        }
    }

    static func mapProblem(_ key: String, _ v: UnsafePointer<FSValue>) -> String? {
        switch v.pointee.value_type_case {
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_MAP_VALUE, GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_NULL_VALUE:
            return nil
        default:
            return "\(key) is \(typeName(v)), not a map"
        }
    }

    /// "a string", "an integer", ... for messages.
    static func typeName(_ v: UnsafePointer<FSValue>?) -> String {
        guard let v else { return "missing" }
        switch v.pointee.value_type_case {
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_NULL_VALUE: return "null"
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_BOOLEAN_VALUE: return "a boolean"
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_INTEGER_VALUE: return "an integer"
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_DOUBLE_VALUE: return "a double"
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_STRING_VALUE: return "a string"
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_TIMESTAMP_VALUE: return "a timestamp"
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_BYTES_VALUE: return "bytes"
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_REFERENCE_VALUE: return "a reference"
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_GEO_POINT_VALUE: return "a geo point"
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_ARRAY_VALUE: return "a list"
        case GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_MAP_VALUE: return "a map"
        default: return "an unknown value"
        }
    }
}

/// A document that could not be read, for the error of a get or the warning of a listing.
struct MalformedDocument: Error {
    var id: String
    var problem: String
}

extension FirestoreConnection {
    /// Logs (warning) and counts a malformed document a listing leaves out.
    func reportSkipped(collection: String, id: String, problem: String) {
        shared.malformedSkipped.add(1, ordering: .relaxed)
        shared.logger.warning(
            "skipped a malformed document \(collection)/\(id): \(problem)",
            metadata: ["firestore.collection": .string(collection), "firestore.document": .string(id)])
    }

    /// The error of a get that found a malformed document.
    static func malformed(kind: String, collection: String, id: String, problem: String) -> MemoryError {
        MemoryError(
            .storage,
            "\(kind) \(Validation.show(id)) is stored malformed in \(collection)/\(id): \(problem)",
            operation: FirestoreMethod.batchGetDocuments.operation, details: ["id": id])
    }
}
