import MemoryDomain
import XCTest

@testable import MemoryFirestore

/// The gRPC pieces without a server: message framing across reads, trailers, status mapping.
final class GRPCTests: XCTestCase {
    /// `messages` framed as a gRPC body: flag 0, 4-byte big-endian length, bytes.
    private func body(_ messages: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for m in messages {
            let n = m.count
            out += [0, UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + m
        }
        return out
    }

    private func feed(_ reader: inout GRPCMessageReader, _ bytes: [UInt8], into out: inout [[UInt8]]) throws {
        let r: Result<Void, MemoryError> = bytes.withUnsafeBytes { b in
            do throws(MemoryError) {
                try reader.feed(b) { (m) throws(MemoryError) in out.append(Array(m)) }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try r.get()
    }

    func testStreamedMessagesSplitAnywhereAcrossReadsComeOutWhole() throws {
        var rng = SystemRandomNumberGenerator()
        let messages: [[UInt8]] = [
            [], [1], Array(repeating: 7, count: 4), (0..<300).map { UInt8($0 & 0xFF) },
            (0..<70_000).map { UInt8(truncatingIfNeeded: $0 * 31) }, [9, 9],
        ]
        let all = body(messages)
        // One byte at a time, in one piece, and in random cuts.
        var cuttings: [[Int]] = [Array(repeating: 1, count: all.count), [all.count]]
        for _ in 0..<20 {
            var sizes: [Int] = []
            var left = all.count
            while left > 0 {
                let n = min(left, Int.random(in: 1...9000, using: &rng))
                sizes.append(n)
                left -= n
            }
            cuttings.append(sizes)
        }
        for sizes in cuttings {
            var reader = GRPCMessageReader()
            var out: [[UInt8]] = []
            var at = 0
            for n in sizes {
                try feed(&reader, Array(all[at..<(at + n)]), into: &out)
                at += n
            }
            XCTAssertEqual(out, messages, "cut into \(sizes.count) reads")
            XCTAssertFalse(reader.hasPartialMessage)
            XCTAssertEqual(reader.messages, messages.count)
        }
    }

    func testTruncatedCompressedAndOversizedMessages() throws {
        var reader = GRPCMessageReader(maxMessageBytes: 100)
        var out: [[UInt8]] = []
        try feed(&reader, Array(body([[1, 2, 3]]).dropLast()), into: &out)
        XCTAssertTrue(reader.hasPartialMessage, "an answer that ends here is truncated")
        XCTAssertEqual(out.count, 0)

        var compressed = GRPCMessageReader()
        XCTAssertThrowsError(try feed(&compressed, [1, 0, 0, 0, 1, 5], into: &out)) {
            XCTAssertTrue(($0 as? MemoryError)?.message.contains("compressed") ?? false, "\($0)")
        }
        var small = GRPCMessageReader(maxMessageBytes: 100)
        // The length alone is refused, before the body arrives.
        XCTAssertThrowsError(try feed(&small, [0, 0, 0, 0, 101], into: &out)) {
            XCTAssertTrue(($0 as? MemoryError)?.message.contains("101 bytes") ?? false, "\($0)")
        }
    }

    private func sink(headers: [String]) -> GRPCCallSink {
        let s = GRPCCallSink { _ in }
        for h in headers { Array(h.utf8).withUnsafeBytes { s.header($0) } }
        return s
    }

    func testStatusFromTrailersOrTrailersOnlyHeadersOrHTTPStatus() {
        // Trailers after a body (HTTP/2 headers and trailers both reach the header callback).
        var s = sink(headers: ["HTTP/2 200", "content-type: application/grpc", "", "grpc-status: 0"])
        XCTAssertEqual(s.status(httpStatus: 200, httpVersion: 3).code, .ok)
        // Trailers-only, percent-encoded message.
        s = sink(headers: [
            "HTTP/2 200", "content-type: application/grpc", "grpc-status: 5",
            "grpc-message: Document %22x%22 not found%E2%80%A6",
        ])
        XCTAssertEqual(
            s.status(httpStatus: 200, httpVersion: 3),
            FirestoreStatus(code: .notFound, message: "Document \"x\" not found…"))
        // Names in any case.
        s = sink(headers: ["HTTP/2 200", "Grpc-Status: 14", "GRPC-MESSAGE: down"])
        XCTAssertEqual(s.status(httpStatus: 200, httpVersion: 3), FirestoreStatus(code: .unavailable, message: "down"))
        // No grpc-status: the HTTP status decides, as gRPC maps it.
        for (http, code) in [
            (503, StatusCode.unavailable), (429, .unavailable), (401, .unauthenticated), (404, .unimplemented),
            (500, .unknown),
        ] {
            XCTAssertEqual(
                sink(headers: ["HTTP/2 \(http)"]).status(httpStatus: http, httpVersion: 3).code, code, "\(http)")
        }
        XCTAssertEqual(sink(headers: ["HTTP/2 200"]).status(httpStatus: 200, httpVersion: 3).code, .internal)
        // An HTTP/1 answer is not gRPC at all.
        XCTAssertEqual(
            sink(headers: ["HTTP/1.1 404 Not Found"]).status(httpStatus: 404, httpVersion: 2).code, .unavailable)
    }

    func testStatusMapsToTheTypedErrorsAndRetryRules() {
        let op = "firestore.commit"
        let cases: [(StatusCode, ErrorType, retryable: Bool, failure: Bool)] = [
            (.unavailable, .connection, true, true), (.deadlineExceeded, .connection, true, true),
            (.resourceExhausted, .operation, true, true), (.aborted, .operation, true, true),
            (.internal, .operation, true, true), (.unauthenticated, .connection, false, true),
            (.permissionDenied, .connection, false, true), (.notFound, .notFound, false, false),
            (.alreadyExists, .duplicate, false, false), (.invalidArgument, .validation, false, false),
            (.failedPrecondition, .operation, false, false), (.unknown, .operation, false, true),
        ]
        for (code, type, retryable, failure) in cases {
            let s = FirestoreStatus(code: code, message: "m")
            let e = s.error(op)
            XCTAssertEqual(e.type, type, "\(code)")
            XCTAssertEqual(e.operation, op)
            XCTAssertTrue(e.message.contains("\(code.name): m"), e.message)
            XCTAssertEqual(s.isRetryable, retryable, "\(code)")
            XCTAssertEqual(s.isBackendFailure, failure, "\(code): counts for the circuit breaker")
        }
        let index = FirestoreStatus(code: .failedPrecondition, message: "The query requires an index. Create it here")
        XCTAssertTrue(index.error(op).message.contains("firestore.indexes.json"))
        XCTAssertEqual(FirestoreStatus(rawCode: 99, message: "").code, .unknown)
    }

    func testRoutingHeaderIsURLEncodedLikeGooglesClients() {
        XCTAssertEqual(
            FirestoreShared.urlEncoded("projects/p-1/databases/(default)"), "projects/p-1/databases/%28default%29")
        XCTAssertEqual(FirestoreMethod.batchGetDocuments.operation, "firestore.batchGetDocuments")
        var c = FirestoreConfig(projectID: "p")
        XCTAssertEqual(c.endpointDescription, "https://firestore.googleapis.com (TLS, h2)")
        XCTAssertEqual(c.endpoint.version, .http2TLS)
        c.emulatorHost = "127.0.0.1:8080"
        XCTAssertEqual(c.endpointDescription, "http://127.0.0.1:8080 (emulator, h2c)")
        XCTAssertEqual(c.endpoint.version, .http2PriorKnowledge)
    }
}
