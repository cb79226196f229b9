import Logging
import MemoryDomain
import MemoryMetrics
import MemoryUtilities
import Synchronization

/// The Firestore methods memoryd calls, on `google.firestore.v1.Firestore`.
enum FirestoreMethod: String, Sendable, CaseIterable {
    case commit = "Commit"
    case batchWrite = "BatchWrite"
    case batchGetDocuments = "BatchGetDocuments"
    case runQuery = "RunQuery"

    /// `firestore.commit`, `firestore.runQuery`, ...: the `operation` of errors.
    var operation: String { "firestore." + rawValue.prefix(1).lowercased() + rawValue.dropFirst() }
}

/// Firestore's gRPC API on one worker's connection: auth metadata, a per-attempt timeout bounded by the
/// call's deadline, retries with backoff for transient failures, the shared circuit breaker around every
/// attempt.
final class FirestoreRPC {
    static let service = "google.firestore.v1.Firestore"

    let handle: CurlHandle
    let http: HTTPClient
    let channel: GRPCChannel
    let shared: FirestoreShared
    /// True when the last `call` sent its request more than once (a write may have been applied before).
    private(set) var lastCallRetried = false
    /// `memoryd_backend_*`: each attempt timed under its method, failures and retries counted (nil: off).
    private let metrics: BackendMetrics?
    private let durations: [FirestoreMethod: HistogramCell]

    init(shared: FirestoreShared) throws(MemoryError) {
        self.shared = shared
        do { handle = try CurlHandle() } catch {
            throw .connection("cannot open a connection handle: \(error)", operation: "firestore.connect")
        }
        http = HTTPClient(handle: handle)
        channel = GRPCChannel(handle: handle, endpoint: shared.config.endpoint)
        metrics = shared.metrics
        var cells: [FirestoreMethod: HistogramCell] = [:]
        if let metrics { for m in FirestoreMethod.allCases { cells[m] = metrics.requests(m.operation) } }
        durations = cells
    }

    /// Calls `method` with `request` (a framed message, see `ProtoArena.framed`).
    /// - Parameters:
    ///   - retry: false for a single attempt (health probe).
    ///   - onAttempt: called before each attempt, to drop what an earlier attempt delivered.
    ///   - onMessage: each answer message as it arrives.
    /// - Returns: nil when Firestore answered OK; else its status, when that is an answer of a working backend
    ///   (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT, ...).
    /// - Throws: ConnectionError (unreachable, timed out, circuit open, auth) or OperationError after retries.
    func call(
        _ method: FirestoreMethod, request: [UInt8], context: CallContext, retry: Bool = true,
        onAttempt: () -> Void = {}, onMessage: (UnsafeRawBufferPointer) throws(MemoryError) -> Void
    ) throws(MemoryError) -> FirestoreStatus? {
        let operation = method.operation
        let config = shared.config
        let routing = method == .runQuery ? shared.parentRouting : shared.databaseRouting
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

            // One attempt: either a status from Firestore or a transport/auth failure.
            var failure: MemoryError
            var retryable: Bool
            do throws(MemoryError) {
                let auth = try shared.tokens.authorization(http: http, timeoutMs: timeoutMs)
                onAttempt()
                let started = monotonicNanos()
                defer { durations[method]?.observe(since: started, now: monotonicNanos()) }
                let outcome: Result<FirestoreStatus, GRPCCallFailure> = request.withUnsafeBytes { body in
                    do throws(GRPCCallFailure) {
                        return .success(
                            try channel.call(
                                service: Self.service, method: method.rawValue, framedRequest: body,
                                metadata: ["authorization: \(auth)", routing], timeoutMs: timeoutMs,
                                onMessage: onMessage))
                    } catch {
                        return .failure(error)
                    }
                }
                let status: FirestoreStatus
                switch outcome {
                case .success(let s):
                    status = s
                case .failure(.message(let e)):
                    // Firestore answered, but with something that cannot be used: not a transport failure.
                    shared.breaker.record(success: true)
                    throw e
                case .failure(.transport(let e)):
                    throw MemoryError.connection(
                        e.isTimeout
                            ? "\(operation) timed out after \(timeoutMs) ms"
                            : "Firestore unreachable at \(config.endpoint.baseURL): \(e.summary)",
                        operation: operation)
                }
                if status.code == .ok {
                    shared.breaker.record(success: true)
                    return nil
                }
                if status.code == .unauthenticated, !refreshedAuth, !shared.tokens.isEmulator {
                    // An expired or revoked token: fetch a fresh one once, without counting a failure.
                    shared.tokens.invalidate()
                    refreshedAuth = true
                    shared.breaker.record(success: true)
                    continue
                }
                guard status.isBackendFailure else {
                    shared.breaker.record(success: true)
                    return status
                }
                failure = status.error(operation)
                retryable = status.isRetryable
            } catch {
                if error.type != .connection { throw error }
                failure = error
                // Transport failures and timeouts are transient; a refused token is not.
                retryable = !error.message.hasPrefix("auth to backend failed")
            }
            shared.breaker.record(success: false, error: failure.message)
            shared.recordError(failure.message)
            metrics?.recordError(failure)

            guard retryable, attempt < policy.maxRetries else {
                if attempt > 0 { failure.message += " (\(attempt + 1) attempts)" }
                throw failure
            }
            let delay = policy.delayMs(attempt: attempt)
            guard Double(context.deadline.remainingMilliseconds) > delay else {
                failure.message += " (\(attempt + 1) attempts; no time left before the call's deadline to retry)"
                throw failure
            }
            shared.retries.add(1, ordering: .relaxed)
            metrics?.recordRetry()
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
    /// Set by `attachMetrics` before the first connection opens.
    private let metricsSlot = Mutex<BackendMetrics?>(nil)
    var metrics: BackendMetrics? {
        get { metricsSlot.withLock { $0 } }
        set { metricsSlot.withLock { $0 = newValue } }
    }
    /// Malformed documents that listings, history and search left out (DocumentChecks).
    let malformedSkipped = Atomic<Int>(0)
    let logger: Logger
    /// `x-goog-request-params` as Google's own clients send it: `database=…` for Commit, BatchWrite and
    /// BatchGetDocuments, `parent=…` for RunQuery (values URL-encoded, `/` kept).
    let databaseRouting: String
    let parentRouting: String
    private let lastErrorText = Mutex("")

    init(config: FirestoreConfig, tokens: TokenSource, logger: Logger) {
        self.config = config
        self.tokens = tokens
        self.logger = logger
        breaker = CircuitBreaker(failureThreshold: config.failureThreshold, recoveryTimeoutS: config.recoveryTimeoutS)
        databaseRouting = "x-goog-request-params: database=\(Self.urlEncoded(config.databasePath))"
        parentRouting = "x-goog-request-params: parent=\(Self.urlEncoded(config.documentsPath))"
    }

    func recordError(_ message: String) { lastErrorText.withLock { $0 = message } }
    var lastError: String { lastErrorText.withLock { $0 } }

    func documentName(collection: String, id: String) -> String { "\(config.documentsPath)/\(collection)/\(id)" }

    /// Percent-encoding as `urllib.parse.urlencode(safe="/")` does it.
    static func urlEncoded(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(b >> 4)], hex[Int(b & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}
