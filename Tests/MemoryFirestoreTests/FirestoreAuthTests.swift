import Foundation
import Logging
import MemoryDomain
import MemoryTestSupport
import MemoryUtilities
import XCTest

@testable import MemoryFirestore

/// Service-account and metadata-server credentials against local fake servers (Python 3): the token server
/// verifies the JWT's RS256 signature with `cryptography` against the public half of a key made here, and a
/// fake Firestore endpoint accepts only the token it handed out.
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
        let port = try startServer(mode: "token")
        let pem = try String(contentsOf: directory.appendingPathComponent("key.pem"), encoding: .utf8)
        let key = JSONValue.object([
            "type": .string("service_account"), "client_email": .string("memoryd@test.iam.gserviceaccount.com"),
            "private_key": .string(pem), "token_uri": .string("http://127.0.0.1:\(port)/token"),
        ])
        let keyPath = directory.appendingPathComponent("sa.json").path
        try key.serialized().write(toFile: keyPath, atomically: true, encoding: .utf8)

        var config = FirestoreConfig(projectID: "p")
        config.credentialsPath = keyPath
        config.documentsURLOverride = "http://127.0.0.1:\(port)/v1/projects/p/databases/(default)/documents"
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
    }

    func testBadKeyFileIsRefusedAtStart() throws {
        let keyPath = directory.appendingPathComponent("bad.json").path
        try #"{"client_email":"x","private_key":"not a pem"}"#.write(toFile: keyPath, atomically: true, encoding: .utf8)
        var config = FirestoreConfig(projectID: "p")
        config.credentialsPath = keyPath
        XCTAssertThrowsError(try FirestoreBackend(config: config, limits: Limits(), logger: Logger(label: "test")))
    }

    func testMetadataServerTokenNeedsMetadataFlavor() throws {
        let port = try startServer(mode: "metadata")
        var config = FirestoreConfig(projectID: "p")
        config.metadataServerURL = "http://127.0.0.1:\(port)"
        config.documentsURLOverride = "http://127.0.0.1:\(port)/v1/projects/p/databases/(default)/documents"
        let backend = try FirestoreBackend(config: config, limits: Limits(), logger: Logger(label: "test"))
        let conn = try backend.makeConnection()
        defer { conn.close() }
        let h = conn.health(context: CallContext(deadline: .after(milliseconds: 5000)))
        XCTAssertEqual(h.status, .healthy, h.reason)
        XCTAssertEqual(try counter(port, "tokens"), 1)
    }

    func testRefusedTokenIsAConnectionError() throws {
        let port = try startServer(mode: "refuse")
        var config = FirestoreConfig(projectID: "p")
        config.metadataServerURL = "http://127.0.0.1:\(port)"
        config.documentsURLOverride = "http://127.0.0.1:\(port)/v1/projects/p/databases/(default)/documents"
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

    /// Starts the fake server and reads the port it prints.
    private func startServer(mode: String) throws -> Int {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", directory.appendingPathComponent("fake_google.py").path, mode, directory.path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        server = p
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line += byte
        }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces)) else {
            throw Requirement.unavailable(
                "the fake server did not start (python3 with the cryptography package is needed)")
        }
        return port
    }

    private func counter(_ port: Int, _ name: String) throws -> Int {
        let client = try HTTPClient(preferHTTP2: false)
        let r = try client.request(.get, url: "http://127.0.0.1:\(port)/count/\(name)", headers: [], timeoutMs: 2000)
        return Int(String(decoding: r.body, as: UTF8.self)) ?? -1
    }

    static let script = #"""
        import base64, json, sys, time, urllib.parse
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        mode, directory = sys.argv[1], sys.argv[2]
        counts = {"tokens": 0}
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
                if self.path.endswith(":batchGet"):
                    if self.headers.get("Authorization") != "Bearer " + TOKEN:
                        return self.reply(401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad token"}})
                    names = json.loads(body)["documents"]
                    return self.reply(200, [{"missing": n, "readTime": "2026-01-01T00:00:00Z"} for n in names])
                self.reply(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": self.path}})

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print(server.server_port, flush=True)
        server.serve_forever()
        """#
}
