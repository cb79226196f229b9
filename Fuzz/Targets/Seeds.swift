// Seed corpus: valid requests of every method, so the fuzzers start from inputs that go deep.
// `MEMORYD_FUZZ_WRITE_SEEDS=DIR fuzz-<target>` writes them to DIR and exits (run by scripts/fuzz).
import MemoryDomain
import MemoryUtilities
import MemoryWire

#if canImport(Glibc)
import Glibc
#endif

enum Seeds {
    static let embedding: [Float] = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8]

    static var requests: [MethodRequest] {
        let item = MemoryItem(
            id: "mem_1", userID: "u1", sessionID: "s1", timestamp: Timestamp(seconds: 1_700_000_000, nanos: 5000),
            itemType: "conversation", personaActive: "helper", textContent: "hello wörld",
            embedding: embedding,
            metadata: [
                "k": .string("v"), "n": .number(1.5), "b": .bool(true), "z": .null,
                "a": .array([.number(1), .string("x")]), "o": .object(["deep": .object(["x": .number(2)])]),
            ],
            expiration: Timestamp(seconds: 1_900_000_000))
        return [
            .ping,
            .addMemoryItem(item: item, upsert: false, rejectDuplicateContent: true),
            .addMemoryItem(item: MemoryItem(userID: "u"), upsert: true, rejectDuplicateContent: false),
            .addMemoryItems(
                items: [item, MemoryItem(id: "mem_2", userID: "u2", textContent: "b"), MemoryItem(userID: "")],
                upsert: true),
            .getMemoryItem(id: "mem_1"),
            .deleteMemoryItem(id: "mem_1"),
            .getConversationHistory(
                HistoryRequest(
                    userID: "u1", sessionID: "s1", limit: 10, itemType: "note",
                    filters: ["metadata.k": .string("v"), "persona_active": .string("p")],
                    pageToken: "")),
            .semanticSearch(
                SearchRequest(
                    userID: "u1", queryEmbedding: embedding, persona: "p", sessionID: "s", topK: 3,
                    minScore: 0.2, measure: .euclidean)),
            .checkDuplicate(item: item),
            .addRawAgentData(
                AgentData(
                    id: "agent_1", agentID: "a1", timestamp: Timestamp(seconds: 1), dataType: "obs",
                    content: .object(["x": .array([.number(1), .bool(false)])]), metadata: ["m": .string("v")],
                    expiration: Timestamp(seconds: 2_000_000_000))),
            .getAgentData(id: "agent_1"),
            .listAgentData(ListAgentDataRequest(agentID: "a1", dataType: "obs", limit: 5, pageToken: "")),
            .listAgentData(ListAgentDataRequest(agentID: "", dataType: "obs", limit: 5, allAgents: true)),
            .listMemoryItems(
                ListMemoryItemsRequest(userID: "u1", itemType: "note", limit: 7, excludeEmbeddings: true)),
            .cleanupExpiredItems,
            .healthCheck,
        ]
    }

    /// Method byte + payload, the input format of fuzz-requests.
    static var requestInputs: [[UInt8]] {
        requests.map { r in
            [UInt8(MemoryMethod.allCases.firstIndex(of: r.method)!)] + PayloadCodec.encodeRequest(r)
        }
    }

    /// Control byte + a stream of frames, the input format of fuzz-frames.
    static var frameInputs: [[UInt8]] {
        var frames: [[UInt8]] = requests.enumerated().map { (i, r) in
            FrameCodec.encode(
                .request(
                    RequestFrame(
                        id: UInt64(i + 1), method: r.method.path, timeoutMs: 1000,
                        metadata: ["trace": "abc"], payload: PayloadCodec.encodeRequest(r))))
        }
        frames.append(FrameCodec.encode(.cancel(id: 7)))
        frames.append(FrameCodec.encode(.goAway(GoAwayFrame(code: .unavailable, message: "bye", lastRequestID: 9))))
        frames.append(
            FrameCodec.encode(
                .response(ResponseFrame(id: 3, error: MemoryError(.duplicate, "dup", details: ["existing_id": "x"])))))
        frames.append(FrameCodec.encode(.response(ResponseFrame(id: 4, payload: [1, 2, 3]))))
        var inputs: [[UInt8]] = frames.enumerated().map { (i, f) in [UInt8(i % 10)] + f }
        inputs.append([3] + frames.joined())
        inputs.append([0x85] + frames[0] + [0, 0, 0, 3, 1, 2])
        return inputs
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> Int32 {
    guard let dirC = getenv("MEMORYD_FUZZ_WRITE_SEEDS") else { return 0 }
    let dir = String(cString: dirC)
    let which = String(cString: argv.pointee![0]!)
    let inputs = which.hasSuffix("fuzz-frames") ? Seeds.frameInputs : Seeds.requestInputs
    for (i, bytes) in inputs.enumerated() {
        let path = "\(dir)/seed-\(i)"
        guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
    }
    print("wrote \(inputs.count) seeds to \(dir)")
    exit(0)
}

/// `precondition` that keeps its message in optimized builds (the fuzzers are built with -O).
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String = "") {
    if !condition() { fatalError(message()) }
}
