/// gRPC canonical status codes (the `code` of `orchestra.rpc.v1.Status`).
public enum StatusCode: Int32, Sendable, CaseIterable {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16

    /// The upper-case gRPC name, e.g. `NOT_FOUND`.
    public var name: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internal: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        }
    }
}

/// The storage error hierarchy of SPEC §3 (`orchestra.rpc.v1.ErrorType`).
public enum ErrorType: Int32, Sendable, CaseIterable {
    /// An error of the call itself (deadline, overload, unknown method, ...), not of storage.
    case unspecified = 0
    case storage = 1
    case connection = 2
    case validation = 3
    case operation = 4
    case notFound = 5
    case duplicate = 6

    /// The Python exception name clients use for this type.
    public var exceptionName: String {
        switch self {
        case .unspecified: "RpcError"
        case .storage: "StorageError"
        case .connection: "ConnectionError"
        case .validation: "ValidationError"
        case .operation: "OperationError"
        case .notFound: "NotFoundError"
        case .duplicate: "DuplicateError"
        }
    }

    /// The gRPC code every error of this type travels with.
    public var statusCode: StatusCode {
        switch self {
        case .unspecified: .unknown
        case .storage: .internal
        case .connection: .unavailable
        case .validation: .invalidArgument
        case .operation: .aborted
        case .notFound: .notFound
        case .duplicate: .alreadyExists
        }
    }
}

/// The one error type of memoryd: every failure of a call, from validation to the backend, is one of these,
/// and it maps one-to-one onto the wire's `Status`.
public struct MemoryError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: StatusCode
    public var type: ErrorType
    public var message: String
    /// The backend operation that failed (OperationError), e.g. `firestore.commit`.
    public var operation: String
    public var details: [String: String]

    public init(
        code: StatusCode, type: ErrorType, message: String, operation: String = "", details: [String: String] = [:]
    ) {
        self.code = code
        self.type = type
        self.message = message
        self.operation = operation
        self.details = details
    }

    public init(_ type: ErrorType, _ message: String, operation: String = "", details: [String: String] = [:]) {
        self.init(code: type.statusCode, type: type, message: message, operation: operation, details: details)
    }

    public static func storage(_ message: String, operation: String = "") -> MemoryError {
        .init(.storage, message, operation: operation)
    }
    public static func connection(_ message: String, operation: String = "") -> MemoryError {
        .init(.connection, message, operation: operation)
    }
    public static func validation(_ message: String) -> MemoryError { .init(.validation, message) }
    public static func operation(_ operation: String, _ message: String) -> MemoryError {
        .init(.operation, message, operation: operation)
    }
    public static func notFound(_ message: String) -> MemoryError { .init(.notFound, message) }
    public static func duplicate(_ message: String) -> MemoryError { .init(.duplicate, message) }

    /// Errors of the call itself (not of storage) carry ERROR_TYPE_UNSPECIFIED.
    public static func call(_ code: StatusCode, _ message: String) -> MemoryError {
        .init(code: code, type: .unspecified, message: message)
    }

    /// The name a client shows: the exception name for storage errors, the gRPC code name otherwise.
    public var name: String { type == .unspecified ? code.name : type.exceptionName }

    public var description: String { "\(name): \(message)" }
}
