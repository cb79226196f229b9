import MemoryDomain
import MemoryPosix
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

/// What the original system's in-process memory manager (V1) did against Firestore, done as leanly as it
/// can be done in Swift: every request on a NEW TCP connection (`Connection: close`), calls one after
/// another, semantic search by reading ALL of the user's documents with runQuery and scoring them
/// client-side, history by a runQuery. Same document layout as memoryd's (SPEC §9), on the emulator.
final class V1Baseline: Sendable {  // immutable: one per run, shared by the client threads
    let host: String
    let port: UInt16
    let documentsPath: String  // /v1/projects/P/databases/(default)/documents
    let collection: String

    init(emulatorHost: String, projectID: String, collection: String = "memory_items") throws {
        let parts = emulatorHost.split(separator: ":")
        guard parts.count == 2, let p = UInt16(parts[1]) else { throw BenchError("bad emulator host \(emulatorHost)") }
        host = String(parts[0]) == "localhost" ? "127.0.0.1" : String(parts[0])
        port = p
        documentsPath = "/v1/projects/\(projectID)/databases/(default)/documents"
        self.collection = collection
    }

    // MARK: - Operations

    func add(_ item: MemoryItem) throws {
        var fields: [String: JSONValue] = [
            "id": str(item.id), "user_id": str(item.userID), "session_id": str(item.sessionID),
            "item_type": str(item.itemType.isEmpty ? "conversation" : item.itemType),
            "persona_active": str(item.personaActive),
            "text_content": str(item.textContent),
            "timestamp": .object(["timestampValue": .string(Timestamp.now().rfc3339)]),
            "metadata": .object(["mapValue": .object(["fields": .object([:])])]),
        ]
        if !item.embedding.isEmpty {
            fields["embedding"] = .object([
                "mapValue": .object([
                    "fields": .object([
                        "__type__": str("__vector__"),
                        "value": .object([
                            "arrayValue": .object([
                                "values": .array(item.embedding.map { .object(["doubleValue": .number(Double($0))]) })
                            ])
                        ]),
                    ])
                ])
            ])
        }
        let (status, body) = try http(
            "POST", "\(documentsPath)/\(collection)?documentId=\(item.id)",
            JSONValue.object(["fields": .object(fields)]).serialized(sortedKeys: false))
        guard status == 200 else {
            throw BenchError("V1 add: HTTP \(status): \(String(decoding: body.prefix(300), as: UTF8.self))")
        }
    }

    func get(_ id: String) throws -> MemoryItem {
        let (status, body) = try http("GET", "\(documentsPath)/\(collection)/\(id)", nil)
        guard status == 200 else { throw BenchError("V1 get: HTTP \(status)") }
        return try item(from: JSONValue.parse(bytes: body))
    }

    /// Reads every document of the user and keeps the best `topK` by cosine similarity.
    func search(userID: String, query: [Float], topK: Int) throws -> [(String, Double)] {
        let q: JSONValue = .object([
            "structuredQuery": .object([
                "from": .array([.object(["collectionId": .string(collection)])]),
                "where": fieldFilter("user_id", "EQUAL", str(userID)),
            ])
        ])
        let docs = try runQuery(q)
        var scored: [(String, Double)] = []
        for d in docs {
            let it = item(from: d)
            guard it.embedding.count == query.count else { continue }
            scored.append((it.id, Scoring.score(it.embedding, query, measure: .cosine)))
        }
        scored.sort { $0.1 > $1.1 }
        return Array(scored.prefix(topK))
    }

    func history(userID: String, limit: Int) throws -> [MemoryItem] {
        let q: JSONValue = .object([
            "structuredQuery": .object([
                "from": .array([.object(["collectionId": .string(collection)])]),
                "where": .object([
                    "compositeFilter": .object([
                        "op": .string("AND"),
                        "filters": .array([
                            fieldFilter("user_id", "EQUAL", str(userID)),
                            fieldFilter("item_type", "EQUAL", str("conversation")),
                        ]),
                    ])
                ]),
                "orderBy": .array([
                    .object(["field": .object(["fieldPath": .string("timestamp")]), "direction": .string("DESCENDING")])
                ]),
                "limit": .number(Double(limit)),
            ])
        ])
        return try runQuery(q).map(item(from:))
    }

    private func runQuery(_ q: JSONValue) throws -> [JSONValue] {
        let (status, body) = try http("POST", "\(documentsPath):runQuery", q.serialized(sortedKeys: false))
        guard status == 200 else {
            throw BenchError("V1 runQuery: HTTP \(status): \(String(decoding: body.prefix(300), as: UTF8.self))")
        }
        let parsed = try JSONValue.parse(bytes: body, maxDepth: 64)
        return (parsed.arrayValue ?? []).compactMap { $0["document"] }
    }

    private func str(_ s: String) -> JSONValue { .object(["stringValue": .string(s)]) }

    private func fieldFilter(_ field: String, _ op: String, _ value: JSONValue) -> JSONValue {
        .object([
            "fieldFilter": .object(["field": .object(["fieldPath": .string(field)]), "op": .string(op), "value": value])
        ])
    }

    private func item(from doc: JSONValue) -> MemoryItem {
        let f = doc["fields"]
        var it = MemoryItem()
        it.id = f?["id"]?["stringValue"]?.stringValue ?? ""
        it.userID = f?["user_id"]?["stringValue"]?.stringValue ?? ""
        it.textContent = f?["text_content"]?["stringValue"]?.stringValue ?? ""
        it.itemType = f?["item_type"]?["stringValue"]?.stringValue ?? ""
        if let values = f?["embedding"]?["mapValue"]?["fields"]?["value"]?["arrayValue"]?["values"]?.arrayValue {
            it.embedding = values.map { Float($0["doubleValue"]?.numberValue ?? 0) }
        }
        return it
    }

    // MARK: - HTTP/1.1 on a fresh connection per request

    func http(_ method: String, _ path: String, _ body: String?) throws -> (Int, [UInt8]) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(host)
        addr.sin_port = port.bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            throw BenchError("V1: connect to \(host):\(port) failed: \(String(cString: strerror(errno)))")
        }
        let bodyBytes = Array((body ?? "").utf8)
        var req =
            "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nAuthorization: Bearer owner\r\nConnection: close\r\n"
        if body != nil { req += "Content-Type: application/json\r\nContent-Length: \(bodyBytes.count)\r\n" }
        req += "\r\n"
        let out = Array(req.utf8) + bodyBytes
        do { try out.withUnsafeBytes { try writeAll(fd, $0, socket: true) } } catch {
            throw BenchError("V1: \(error)")
        }
        // The emulator keeps the connection open despite `Connection: close`, so read exactly one response
        // (Content-Length or chunked), then close it ourselves.
        var resp: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        var headerEnd: Int?
        var status = 0, contentLength: Int?, chunked = false
        while true {
            if let h = headerEnd {
                let body = resp.count - (h + 4)
                if let cl = contentLength, body >= cl { break }
                if chunked, resp.count >= 5, resp[(resp.count - 5)...].elementsEqual("0\r\n\r\n".utf8) { break }
            }
            let n: Int
            do {
                n = try syscall("recv") { buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) } }
            } catch { throw BenchError("V1: \(error)") }
            if n == 0 { break }
            resp.append(contentsOf: buf[0..<n])
            if headerEnd == nil, let h = find(resp, Array("\r\n\r\n".utf8), from: 0) {
                headerEnd = h
                let head = String(decoding: resp[0..<h], as: UTF8.self).lowercased()
                status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
                for line in head.split(separator: "\r\n") {
                    if line.hasPrefix("content-length:") {
                        contentLength = Int(line.dropFirst(15).trimmingCharacters())
                    }
                    if line.hasPrefix("transfer-encoding:") && line.contains("chunked") { chunked = true }
                }
                if contentLength == nil && !chunked && (status == 204 || status == 304) { contentLength = 0 }
            }
        }
        guard let h = headerEnd else { throw BenchError("V1: no HTTP header") }
        var payload = Array(resp[(h + 4)...])
        if chunked { payload = dechunk(payload) }
        return (status, payload)
    }

    private func find(_ hay: [UInt8], _ needle: [UInt8], from: Int) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }

    private func dechunk(_ b: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            var j = i
            while j + 1 < b.count && !(b[j] == 13 && b[j + 1] == 10) { j += 1 }
            let sizeText = String(decoding: b[i..<j], as: UTF8.self).split(separator: ";").first ?? "0"
            guard let size = Int(sizeText.trimmingCharacters(), radix: 16), size > 0 else { break }
            let start = j + 2
            guard start + size <= b.count else { break }
            out.append(contentsOf: b[start..<(start + size)])
            i = start + size + 2
        }
        return out
    }
}

/// Runs `body(i)` on `n` threads at once and waits for all of them.
func parallel(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable (Int) -> Void
        let index: Int
        init(_ b: @escaping @Sendable (Int) -> Void, _ i: Int) {
            body = b
            index = i
        }
    }
    if n == 1 {
        body(0)
        return
    }
    var threads: [pthread_t] = []
    for i in 0..<n {
        var t = pthread_t()
        let box = Unmanaged.passRetained(Box(body, i)).toOpaque()
        pthread_create(
            &t, nil,
            { arg in
                let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
                b.body(b.index)
                return nil
            }, box)
        threads.append(t)
    }
    for t in threads { pthread_join(t, nil) }
}
