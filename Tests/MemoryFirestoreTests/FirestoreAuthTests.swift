import Foundation
import Logging
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import XCTest

@testable import MemoryFirestore

/// Service-account and metadata-server credentials against local fake servers (Debian's Python 3 with
/// `python3-cryptography` and `python3-h2`): the token server (HTTP/1.1) verifies the JWT's RS256 signature
/// against the public half of a key made here, and a fake Firestore gRPC endpoint (HTTP/2 without TLS)
/// accepts only the token it handed out and checks the gRPC headers memoryd sends.
final class FirestoreAuthTests: XCTestCase {
    private var server: Process?
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("memoryd-auth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Self.script.write(to: directory.appendingPathComponent("fake_google.py"), atomically: true, encoding: .utf8)
    }

    override func tearDown() {
        if let server, server.isRunning {
            server.terminate()
            server.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    func testServiceAccountKeySignsJWTAndTokenIsCachedAndUsed() throws {
        try run(
            "/usr/bin/openssl",
            [
                "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", directory.appendingPathComponent("key.pem").path,
            ])
        try run(
            "/usr/bin/openssl",
            [
                "pkey", "-in", directory.appendingPathComponent("key.pem").path, "-pubout",
                "-out", directory.appendingPathComponent("pub.pem").path,
            ])
        let (port, grpcPort) = try startServer(mode: "token")
        let pem = try String(contentsOf: directory.appendingPathComponent("key.pem"), encoding: .utf8)
        let key = JSONValue.object([
            "type": .string("service_account"), "client_email": .string("memoryd@test.iam.gserviceaccount.com"),
            "private_key": .string(pem), "token_uri": .string("http://127.0.0.1:\(port)/token"),
        ])
        let keyPath = directory.appendingPathComponent("sa.json").path
        try key.serialized().write(toFile: keyPath, atomically: true, encoding: .utf8)

        var config = FirestoreConfig(projectID: "p")
        config.credentialsPath = keyPath
        config.endpointOverride = "http://127.0.0.1:\(grpcPort)"
        let backend = try FirestoreBackend(config: config, limits: Limits(), logger: Logger(label: "test"))
        let conn = try backend.makeConnection()
        defer { conn.close() }
        for _ in 0..<3 {
            let h = conn.health(context: CallContext(deadline: .after(milliseconds: 5000)))
            XCTAssertEqual(h.status, .healthy, h.reason)
        }
        let ctx = CallContext(deadline: .after(milliseconds: 5000))
        XCTAssertThrowsError(try conn.getMemoryItem(id: "mem_1", context: ctx)) {
            XCTAssertEqual(($0 as? MemoryError)?.type, .notFound)
        }
        XCTAssertEqual(try counter(port, "tokens"), 1, "the token is fetched once and cached")
        XCTAssertEqual(try counter(port, "grpc_ok"), 4, "every call reached the fake Firestore with the token")
    }

    func testBadKeyFileIsRefusedAtStart() throws {
        let keyPath = directory.appendingPathComponent("bad.json").path
        try #"{"client_email":"x","private_key":"not a pem"}"#.write(toFile: keyPath, atomically: true, encoding: .utf8)
        var config = FirestoreConfig(projectID: "p")
        config.credentialsPath = keyPath
        XCTAssertThrowsError(try FirestoreBackend(config: config, limits: Limits(), logger: Logger(label: "test")))
    }

    func testMetadataServerTokenNeedsMetadataFlavor() throws {
        let (port, grpcPort) = try startServer(mode: "metadata")
        var config = FirestoreConfig(projectID: "p")
        config.metadataServerURL = "http://127.0.0.1:\(port)"
        config.endpointOverride = "http://127.0.0.1:\(grpcPort)"
        let backend = try FirestoreBackend(config: config, limits: Limits(), logger: Logger(label: "test"))
        let conn = try backend.makeConnection()
        defer { conn.close() }
        let h = conn.health(context: CallContext(deadline: .after(milliseconds: 5000)))
        XCTAssertEqual(h.status, .healthy, h.reason)
        XCTAssertEqual(try counter(port, "tokens"), 1)
    }

    func testRefusedTokenIsAConnectionError() throws {
        let (port, grpcPort) = try startServer(mode: "refuse")
        var config = FirestoreConfig(projectID: "p")
        config.metadataServerURL = "http://127.0.0.1:\(port)"
        config.endpointOverride = "http://127.0.0.1:\(grpcPort)"
        let backend = try FirestoreBackend(config: config, limits: Limits(), logger: Logger(label: "test"))
        let conn = try backend.makeConnection()
        defer { conn.close() }
        do {
            _ = try conn.getMemoryItem(id: "mem_1", context: CallContext(deadline: .after(milliseconds: 5000)))
            XCTFail("expected ConnectionError")
        } catch let e {
            XCTAssertEqual(e.type, .connection)
            XCTAssertTrue(e.message.contains("auth to backend failed"), e.message)
        }
    }

    // MARK: - Helpers

    private func run(_ tool: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "\(tool) \(args)")
    }

    /// Debian's Python, where `python3-cryptography` and `python3-h2` are installed (scripts/install-deps).
    private static var python: String {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
    }

    /// Starts the fake servers and reads the ports they print: the HTTP/1.1 one (tokens, counters) and the
    /// gRPC one.
    private func startServer(mode: String) throws -> (http: Int, grpc: Int) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [Self.python, directory.appendingPathComponent("fake_google.py").path, mode, directory.path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        server = p
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line += byte
        }
        let ports = String(decoding: line, as: UTF8.self).split(separator: " ").compactMap { Int($0) }
        guard ports.count == 2 else {
            throw Requirement.unavailable(
                "the fake servers did not start (Python 3 with the cryptography and h2 packages is needed)")
        }
        return (ports[0], ports[1])
    }

    private func counter(_ port: Int, _ name: String) throws -> Int {
        let client = try HTTPClient()
        let r = try client.request(.get, url: "http://127.0.0.1:\(port)/count/\(name)", headers: [], timeoutMs: 2000)
        return Int(String(decoding: r.body, as: UTF8.self)) ?? -1
    }

    static let script = #"""
        import base64, json, socket, sys, threading, time, urllib.parse
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import h2.config, h2.connection, h2.events

        mode, directory = sys.argv[1], sys.argv[2]
        counts = {"tokens": 0, "grpc_ok": 0, "grpc_refused": 0}
        TOKEN = "ya29.test-token"

        def b64d(s):
            return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

        def verify_jwt(assertion, audience):
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import padding
            with open(directory + "/pub.pem", "rb") as f:
                pub = serialization.load_pem_public_key(f.read())
            head, claims, sig = assertion.split(".")
            pub.verify(b64d(sig), (head + "." + claims).encode(), padding.PKCS1v15(), hashes.SHA256())
            h, c = json.loads(b64d(head)), json.loads(b64d(claims))
            assert h["alg"] == "RS256", h
            assert c["iss"] == c["sub"] == "memoryd@test.iam.gserviceaccount.com", c
            assert c["aud"] == audience, c
            assert c["scope"] == "https://www.googleapis.com/auth/datastore", c
            assert c["iat"] <= time.time() + 5 and c["exp"] > time.time(), c

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass
            def reply(self, code, body):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            def do_GET(self):
                if self.path.startswith("/count/"):
                    return self.reply(200, str(counts[self.path[7:]]))
                if self.path == "/computeMetadata/v1/instance/service-accounts/default/token":
                    if mode == "refuse":
                        return self.reply(403, {"error": "no service account"})
                    if self.headers.get("Metadata-Flavor") != "Google":
                        return self.reply(403, {"error": "missing Metadata-Flavor"})
                    counts["tokens"] += 1
                    return self.reply(200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
                self.reply(404, {"error": "no such path"})
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/token":
                    form = urllib.parse.parse_qs(body.decode())
                    try:
                        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"], form
                        verify_jwt(form["assertion"][0], "http://127.0.0.1:%d/token" % self.server.server_port)
                    except Exception as e:
                        return self.reply(400, {"error": "invalid_grant", "error_description": repr(e)})
                    counts["tokens"] += 1
                    return self.reply(200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
                self.reply(404, {"error": "no such path"})

        # The fake Firestore: gRPC over HTTP/2 without TLS (prior knowledge), BatchGetDocuments only.
        def varint(n):
            out = b""
            while True:
                b, n = n & 0x7F, n >> 7
                out += bytes([b | (0x80 if n else 0)])
                if not n:
                    return out

        def strings_of_field(msg, number):
            """The string values of a length-delimited field of a protobuf message."""
            i, out = 0, []
            while i < len(msg):
                key, shift = 0, 0
                while True:
                    b = msg[i]; i += 1; key |= (b & 0x7F) << shift; shift += 7
                    if b < 0x80: break
                assert key & 7 == 2, "only length-delimited fields are expected"
                n, shift = 0, 0
                while True:
                    b = msg[i]; i += 1; n |= (b & 0x7F) << shift; shift += 7
                    if b < 0x80: break
                if key >> 3 == number: out.append(msg[i:i + n])
                i += n
            return out

        def answer(conn, sid, headers, body):
            def status(code, message):
                conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc"),
                                        ("grpc-status", str(code)), ("grpc-message", message)], end_stream=True)
            if headers.get("authorization") != "Bearer " + TOKEN:
                counts["grpc_refused"] += 1
                return status(16, "bad token")
            expected = {":method": "POST", ":path": "/google.firestore.v1.Firestore/BatchGetDocuments",
                        "content-type": "application/grpc", "te": "trailers",
                        "x-goog-request-params": "database=projects/p/databases/%28default%29"}
            for k, v in expected.items():
                if headers.get(k) != v:
                    return status(3, "%s is %r, not %r" % (k, headers.get(k), v))
            if not headers.get("grpc-timeout", "").endswith("m"):
                return status(3, "no grpc-timeout")
            assert body[0] == 0 and int.from_bytes(body[1:5], "big") == len(body) - 5
            names = strings_of_field(body[5:], 2)
            counts["grpc_ok"] += 1
            conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
            for n in names:
                msg = b"\x12" + varint(len(n)) + n  # BatchGetDocumentsResponse.missing
                conn.send_data(sid, b"\x00" + len(msg).to_bytes(4, "big") + msg)
            conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)

        def serve_h2(sock):
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
            conn.initiate_connection()
            sock.sendall(conn.data_to_send())
            streams = {}
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        streams[ev.stream_id] = (dict(ev.headers), bytearray())
                    elif isinstance(ev, h2.events.DataReceived):
                        streams[ev.stream_id][1].extend(ev.data)
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        headers, body = streams.pop(ev.stream_id)
                        answer(conn, ev.stream_id, headers, bytes(body))
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)

        def accept_h2(listener):
            while True:
                s, _ = listener.accept()
                threading.Thread(target=serve_h2, args=(s,), daemon=True).start()

        grpc = socket.socket()
        grpc.bind(("127.0.0.1", 0))
        grpc.listen(16)
        threading.Thread(target=accept_h2, args=(grpc,), daemon=True).start()
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print(server.server_port, grpc.getsockname()[1], flush=True)
        server.serve_forever()
        """#
}
