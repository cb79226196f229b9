import Logging
import MemoryDomain
import MemoryUtilities
import MemoryWire
import XCTest

@testable import MemoryServer

/// The worker's side of a call's deadline (PROTOCOL.md "Deadlines"): a call whose deadline has passed is
/// never started on the store, and the store is handed the call's own deadline, not a default or the server's.
final class WorkerTests: XCTestCase {
    /// A store that records the context of every call it gets.
    final class RecordingStore: StoreConnection {
        var contexts: [CallContext] = []

        func addMemoryItem(_ item: MemoryItem, upsert: Bool, context: CallContext) throws(MemoryError) {
            contexts.append(context)
        }
        func addMemoryItems(_ items: [MemoryItem], upsert: Bool, context: CallContext) throws(MemoryError)
            -> [MemoryError?]
        {
            contexts.append(context)
            return items.map { _ in nil }
        }
        func getMemoryItem(id: String, context: CallContext) throws(MemoryError) -> MemoryItem {
            contexts.append(context)
            throw .notFound("memory item \(id) not found")
        }
        func deleteMemoryItem(id: String, context: CallContext) throws(MemoryError) { contexts.append(context) }
        func conversationHistory(_ query: HistoryQuery, context: CallContext) throws(MemoryError) -> Page<MemoryItem> {
            contexts.append(context)
            return Page(items: [])
        }
        func semanticSearch(_ query: SearchQuery, context: CallContext) throws(MemoryError) -> [ScoredItem] {
            contexts.append(context)
            return []
        }
        func findByContentHash(userID: String, contentHash: String, context: CallContext) throws(MemoryError)
            -> String?
        {
            contexts.append(context)
            return nil
        }
        func addAgentData(_ data: AgentData, context: CallContext) throws(MemoryError) { contexts.append(context) }
        func getAgentData(id: String, context: CallContext) throws(MemoryError) -> AgentData {
            contexts.append(context)
            throw .notFound("agent data \(id) not found")
        }
        func listAgentData(_ query: AgentDataQuery, context: CallContext) throws(MemoryError) -> Page<AgentData> {
            contexts.append(context)
            return Page(items: [])
        }
        func listMemoryItems(_ query: ListItemsQuery, context: CallContext) throws(MemoryError) -> Page<MemoryItem> {
            contexts.append(context)
            return Page(items: [])
        }
        func cleanupExpired(context: CallContext) throws(MemoryError) -> UInt64 {
            contexts.append(context)
            return 0
        }
        func health(context: CallContext) -> BackendHealth {
            contexts.append(context)
            return BackendHealth(status: .healthy)
        }
        func close() {}
    }

    final class NoBackend: StoreBackend {
        let name = "none"
        func makeConnection() throws(MemoryError) -> StoreConnection { RecordingStore() }
        func statistics() -> [String: JSONValue] { [:] }
        func shutdown() {}
    }

    private let store = RecordingStore()
    private lazy var service = MemoryService(
        store: store, limits: Limits(embeddingDimension: 8), version: "test", startedAtUptimeNanos: 0,
        healthFigures: { MemoryService.HealthFigures(backend: "none", firestore: false, details: [:]) })
    private let server = Server(
        config: DaemonConfig(), backend: NoBackend(), logger: Logger(label: "test"), reloadConfig: { DaemonConfig() })

    private func call(_ request: MethodRequest, timeoutMs: UInt64) -> Call {
        Call(
            connectionID: 1, requestID: 7, method: request.method, payload: PayloadCodec.encodeRequest(request),
            timeoutMs: timeoutMs, queuedBytes: QueuedBytes())
    }

    /// Runs `call` as a worker does and returns its answer.
    private func run(_ call: Call) throws -> ResponseFrame {
        let payload = try XCTUnwrap(call.start(), "the call may start")
        let frame = server.execute(call, payload: payload, service, cacheEpoch: 0)
        guard case .response(let r) = try FrameCodec.decode(Array(frame.dropFirst(LengthPrefix.size))) else {
            throw MemoryError.call(.internal, "not a response")
        }
        return r
    }

    func testACallWhoseDeadlinePassedInTheQueueIsNeverStartedOnTheStore() throws {
        let write = MethodRequest.addMemoryItem(
            item: MemoryItem(id: "late", userID: "u"), upsert: false, rejectDuplicateContent: false)
        let c = call(write, timeoutMs: 1)
        while !c.deadline.hasPassed {}  // it waited in the queue past its deadline
        let r = try run(c)
        XCTAssertEqual(r.id, 7)
        XCTAssertEqual(r.error?.code, .deadlineExceeded)
        XCTAssertTrue(store.contexts.isEmpty, "the store never saw the call")
    }

    func testTheStoreGetsTheCallsOwnDeadline() throws {
        for (request, timeout) in [
            (MethodRequest.getMemoryItem(id: "x"), UInt64(1234)),
            (
                .addMemoryItem(item: MemoryItem(id: "a", userID: "u"), upsert: false, rejectDuplicateContent: false),
                86_400_000
            ),
            (.getConversationHistory(HistoryRequest(userID: "u")), 30_000),
        ] {
            store.contexts = []
            let c = call(request, timeoutMs: timeout)
            _ = try run(c)
            XCTAssertFalse(store.contexts.isEmpty, "\(request.method)")
            for context in store.contexts { XCTAssertEqual(context.deadline, c.deadline, "\(request.method)") }
        }
    }

    func testAnAbandonedCallIsNotStartedAndARunningOneIsNotAbandoned() {
        let queued = call(.getMemoryItem(id: "x"), timeoutMs: 1000)
        XCTAssertTrue(queued.abandon())
        XCTAssertNil(queued.start(), "abandoned first: a worker skips it")
        let running = call(.getMemoryItem(id: "x"), timeoutMs: 1000)
        XCTAssertEqual(running.start()?.isEmpty, false, "the worker gets the payload")
        XCTAssertFalse(running.abandon(), "a running call finishes; its deadline still bounds the answer")
    }

    func testQueuedBytesCountPayloadsUntilTakenOrDropped() {
        let bytes = QueuedBytes()
        let a = Call(
            connectionID: 1, requestID: 1, method: .ping, payload: [1, 2, 3], timeoutMs: 1000, queuedBytes: bytes)
        let b = Call(
            connectionID: 1, requestID: 2, method: .ping, payload: [4, 5], timeoutMs: 1000, queuedBytes: bytes)
        XCTAssertEqual(bytes.value, 5)
        XCTAssertEqual(a.start(), [1, 2, 3])
        XCTAssertEqual(bytes.value, 2)
        XCTAssertTrue(b.abandon())
        XCTAssertEqual(bytes.value, 0)
        XCTAssertFalse(b.abandon())
        XCTAssertEqual(bytes.value, 0, "counted down once")
    }
}
