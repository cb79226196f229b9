import MemoryDomain
import MemoryUtilities
import Synchronization

/// A non-2xx answer of Firestore: HTTP status, the canonical `error.status` (e.g. `ALREADY_EXISTS`), message.
struct FirestoreStatus: Sendable {
    var http: Int
    var status: String
    var message: String

    init(http: Int, body: [UInt8]) {
        self.http = http
        let json = try? JSONValue.parse(bytes: body)
        let error = json?["error"] ?? json?.arrayValue?.first?["error"]
        status = error?["status"]?.stringValue ?? FirestoreStatus.statusName(forHTTP: http)
        let text = error?["message"]?.stringValue ?? String(decoding: body.prefix(300), as: UTF8.self)
        message = text.count > 500 ? String(text.prefix(500)) + "…" : text
    }

    init(http: Int, status: String, message: String) {
        self.http = http
        self.status = status
        self.message = message
    }

    /// A per-write status of `batchWrite` (`google.rpc.Status`, numeric code).
    init(rpcCode: Int, message: String) {
        self.http = 0
        self.status = StatusCode(rawValue: Int32(rpcCode))?.name ?? "UNKNOWN"
        self.message = message
    }

    static func statusName(forHTTP http: Int) -> String {
        switch http {
        case 400: "INVALID_ARGUMENT"
        case 401: "UNAUTHENTICATED"
        case 403: "PERMISSION_DENIED"
        case 404: "NOT_FOUND"
        case 409: "ABORTED"
        case 429: "RESOURCE_EXHAUSTED"
        case 499: "CANCELLED"
        case 500: "INTERNAL"
        case 501: "UNIMPLEMENTED"
        case 503: "UNAVAILABLE"
        case 504: "DEADLINE_EXCEEDED"
        default: "UNKNOWN"
        }
    }

    /// Transient: worth retrying with backoff.
    var isRetryable: Bool {
        ["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL"].contains(status)
    }

    var isAuthFailure: Bool {
        status == "UNAUTHENTICATED" || status == "PERMISSION_DENIED" || http == 401 || http == 403
    }

    /// Does this answer say the backend is failing (counts for the circuit breaker)?
    var isBackendFailure: Bool { isRetryable || isAuthFailure || http >= 500 }

    /// The SPEC §3 error for this status, naming the operation. Callers handle NOT_FOUND/ALREADY_EXISTS
    /// first where they mean something specific.
    func error(_ operation: String) -> MemoryError {
        let text = "\(operation): \(status) (HTTP \(http)): \(message)"
        switch status {
        case "UNAUTHENTICATED", "PERMISSION_DENIED":
            return .connection("auth to backend failed: \(text)", operation: operation)
        case "UNAVAILABLE", "DEADLINE_EXCEEDED":
            return .connection("Firestore unavailable: \(text)", operation: operation)
        case "NOT_FOUND": return MemoryError(.notFound, text, operation: operation)
        case "ALREADY_EXISTS": return MemoryError(.duplicate, text, operation: operation)
        case "INVALID_ARGUMENT":
            return MemoryError(.validation, "Firestore rejected the request: \(text)", operation: operation)
        case "FAILED_PRECONDITION" where message.contains("index"):
            return .operation(
                operation, "Firestore needs an index for this query (see firestore.indexes.json): \(text)")
        default: return .operation(operation, text)
        }
    }
}

/// The outcome of one REST call after retries: parsed JSON on 2xx, or the status Firestore answered.
enum RESTResult {
    case ok(JSONValue)
    case failed(FirestoreStatus)
}

/// Firestore REST v1 over one `HTTPClient`: auth header, per-request timeout bounded by the call's deadline,
/// retries with backoff for transient failures, and the shared circuit breaker around every request.
final class FirestoreREST {
    let http: HTTPClient
    let shared: FirestoreShared
    /// True when the last `call` sent its request more than once (a write may have been applied before).
    private(set) var lastCallRetried = false

    init(shared: FirestoreShared) throws(MemoryError) {
        self.shared = shared
        do { http = try HTTPClient(preferHTTP2: shared.config.emulatorHost == nil) } catch {
            throw .connection("cannot open an HTTP connection: \(error)", operation: "firestore.connect")
        }
    }

    /// POSTs `body` to `{documents}:{verb}` (commit, batchWrite, runQuery, batchGet).
    /// - Parameters:
    ///   - retry: false for a single attempt (health probe).
    /// - Throws: ConnectionError (unreachable, timed out, circuit open, auth) or OperationError after retries.
    func call(_ verb: String, body: JSONValue, context: CallContext, retry: Bool = true) throws(MemoryError)
        -> RESTResult
    {
        let operation = "firestore.\(verb)"
        let url = shared.config.documentsURL + ":" + verb
        let payload = Array(body.serialized().utf8)
        let config = shared.config
        let policy = RetryPolicy(maxRetries: retry ? max(0, config.maxRetries) : 0)
        var attempt = 0
        var refreshedAuth = false
        lastCallRetried = false
        while true {
            let remaining = context.deadline.remainingMilliseconds
            guard remaining > 0 else {
                throw .connection(
                    "\(operation) timed out: the call's deadline passed"
                        + (attempt > 0 ? " after \(attempt) attempts" : ""),
                    operation: operation)
            }
            let timeoutMs = Int(min(UInt64(max(1, config.requestTimeoutMs)), remaining))
            try shared.breaker.acquire(operation: operation)
            if attempt > 0 { lastCallRetried = true }

            // One attempt: either an answer from Firestore or a transport/auth failure.
            var failure: MemoryError
            var retryable: Bool
            do throws(MemoryError) {
                let auth = try shared.tokens.authorization(http: http, timeoutMs: timeoutMs)
                let response: HTTPResponse
                do {
                    response = try http.request(
                        .post, url: url, headers: ["Content-Type: application/json", "Authorization: \(auth)"],
                        body: payload, timeoutMs: timeoutMs)
                } catch {
                    throw MemoryError.connection(
                        (error.isTimeout ? "\(operation) timed out after \(timeoutMs) ms: " : "Firestore unreachable: ")
                            + "\(error)",
                        operation: operation)
                }
                if (200..<300).contains(response.status) {
                    shared.breaker.record(success: true)
                    guard let json = try? JSONValue.parse(bytes: response.body, maxDepth: 128) else {
                        throw MemoryError.operation(
                            operation,
                            "\(operation): Firestore answered HTTP \(response.status) with a body that is not JSON")
                    }
                    return .ok(json)
                }
                let status = FirestoreStatus(http: response.status, body: response.body)
                if status.http == 401, !refreshedAuth, !shared.tokens.isEmulator {
                    // An expired or revoked token: fetch a fresh one once, without counting a failure.
                    shared.tokens.invalidate()
                    refreshedAuth = true
                    shared.breaker.record(success: true)
                    continue
                }
                guard status.isBackendFailure else {
                    shared.breaker.record(success: true)
                    return .failed(status)
                }
                failure = status.error(operation)
                retryable = status.isRetryable
            } catch {
                failure = error
                // Transport failures and timeouts are transient; a refused token is not.
                retryable = !error.message.hasPrefix("auth to backend failed")
            }
            shared.breaker.record(success: false, error: failure.message)
            shared.recordError(failure.message)

            guard retryable, attempt < policy.maxRetries else {
                if attempt > 0 { failure.message += " (after \(attempt + 1) attempts)" }
                throw failure
            }
            let delay = policy.delayMs(attempt: attempt)
            guard Double(context.deadline.remainingMilliseconds) > delay else {
                failure.message += " (no time left before the call's deadline to retry)"
                throw failure
            }
            shared.retries.add(1, ordering: .relaxed)
            sleepMilliseconds(delay)
            attempt += 1
        }
    }
}

/// What all connections of one backend share: configuration, token cache, circuit breaker, counters.
final class FirestoreShared: Sendable {
    let config: FirestoreConfig
    let tokens: TokenSource
    let breaker: CircuitBreaker
    let retries = Atomic<Int>(0)
    let connectionsOpen = Atomic<Int>(0)
    private let lastErrorText = Mutex("")

    init(config: FirestoreConfig, tokens: TokenSource) {
        self.config = config
        self.tokens = tokens
        breaker = CircuitBreaker(failureThreshold: config.failureThreshold, recoveryTimeoutS: config.recoveryTimeoutS)
    }

    func recordError(_ message: String) { lastErrorText.withLock { $0 = message } }
    var lastError: String { lastErrorText.withLock { $0 } }

    func documentName(collection: String, id: String) -> String { "\(config.documentsPath)/\(collection)/\(id)" }
}
