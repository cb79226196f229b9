import CFirestoreProto

// Short names for the generated protobuf-c structs of google.firestore.v1 used here.
typealias FSValue = Google__Firestore__V1__Value
typealias FSMapValue = Google__Firestore__V1__MapValue
typealias FSMapEntry = Google__Firestore__V1__MapValue__FieldsEntry
typealias FSArrayValue = Google__Firestore__V1__ArrayValue
typealias FSDocument = Google__Firestore__V1__Document
typealias FSDocumentEntry = Google__Firestore__V1__Document__FieldsEntry
typealias FSWrite = Google__Firestore__V1__Write
typealias FSPrecondition = Google__Firestore__V1__Precondition
typealias FSDocumentMask = Google__Firestore__V1__DocumentMask
typealias FSTimestamp = Google__Protobuf__Timestamp
typealias FSQuery = Google__Firestore__V1__StructuredQuery
typealias FSFilter = Google__Firestore__V1__StructuredQuery__Filter
typealias FSFieldReference = Google__Firestore__V1__StructuredQuery__FieldReference
typealias FSOrder = Google__Firestore__V1__StructuredQuery__Order
typealias FSCursor = Google__Firestore__V1__Cursor

/// A stored document's `update_time`, to the nanosecond: the precondition of a delete or replace that must
/// not clobber a concurrent change.
struct DocumentVersion: Sendable, Equatable {
    var seconds: Int64
    var nanos: Int32
}
