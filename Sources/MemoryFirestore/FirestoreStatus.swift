import MemoryDomain

/// A gRPC status Firestore answered (from `grpc-status`/`grpc-message`, a per-write `google.rpc.Status` of
/// BatchWrite, or an HTTP status without gRPC status, mapped as gRPC clients do).
struct FirestoreStatus: Sendable, Equatable {
    var code: StatusCode
    var message: String

    init(code: StatusCode, message: String) {
        self.code = code
        self.message = message.count > 500 ? String(message.prefix(500)) + "…" : message
    }

    /// A numeric gRPC code; unknown numbers are UNKNOWN.
    init(rawCode: Int32, message: String) {
        self.init(code: StatusCode(rawValue: rawCode) ?? .unknown, message: message)
    }

    /// The status an HTTP answer without `grpc-status` stands for (gRPC's "HTTP to gRPC status mapping":
    /// what a proxy or load balancer in front of Firestore may answer).
    init(httpStatus: Int) {
        let code: StatusCode =
            switch httpStatus {
            case 400: .internal
            case 401: .unauthenticated
            case 403: .permissionDenied
            case 404: .unimplemented
            case 429, 502, 503, 504: .unavailable
            default: .unknown
            }
        self.init(code: code, message: "HTTP \(httpStatus) without a gRPC status")
    }

    var name: String { code.name }

    /// Transient: worth retrying with backoff.
    var isRetryable: Bool {
        switch code {
        case .unavailable, .deadlineExceeded, .resourceExhausted, .aborted, .internal: true
        default: false
        }
    }

    var isAuthFailure: Bool { code == .unauthenticated || code == .permissionDenied }

    /// Does this answer say the backend is failing (counts for the circuit breaker)? Not-found, duplicates,
    /// failed preconditions and rejected arguments are answers of a working backend.
    var isBackendFailure: Bool {
        isRetryable || isAuthFailure || code == .unknown || code == .unimplemented || code == .dataLoss
    }

    /// The SPEC §3 error for this status, naming the operation. Callers handle NOT_FOUND/ALREADY_EXISTS
    /// first where they mean something specific.
    func error(_ operation: String) -> MemoryError {
        let text = "\(operation): \(name): \(message)"
        switch code {
        case .unauthenticated, .permissionDenied:
            return .connection("auth to backend failed: \(text)", operation: operation)
        case .unavailable, .deadlineExceeded:
            return .connection("Firestore unavailable: \(text)", operation: operation)
        case .notFound: return MemoryError(.notFound, text, operation: operation)
        case .alreadyExists: return MemoryError(.duplicate, text, operation: operation)
        case .invalidArgument:
            return MemoryError(.validation, "Firestore rejected the request: \(text)", operation: operation)
        case .failedPrecondition where message.contains("index"):
            return .operation(
                operation, "Firestore needs an index for this query (see firestore.indexes.json): \(text)")
        default: return .operation(operation, text)
        }
    }
}
