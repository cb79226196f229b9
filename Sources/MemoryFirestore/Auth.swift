import MemoryDomain
import MemoryUtilities
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where access tokens come from, and the token cache shared by all connections of a backend.
///
/// - emulator: the fixed `Bearer owner`;
/// - service account: an RS256-signed JWT (claims iss/sub = client_email, aud = token_uri, scope datastore)
///   exchanged at the key's `token_uri` (RFC 7523 jwt-bearer grant);
/// - metadata server: `GET /computeMetadata/v1/instance/service-accounts/default/token` on GCE/GKE/Cloud Run.
///
/// A token is reused until 5 minutes before it expires. Fetches run on the asking connection's own HTTP
/// handle (so the pool bound holds); concurrent askers may each fetch once, which is harmless.
final class TokenSource: Sendable {
    enum Kind: Sendable {
        case emulator
        case serviceAccount(email: String, tokenURI: String, signer: RSASigner)
        case metadataServer(url: String)
    }

    static let scope = "https://www.googleapis.com/auth/datastore"
    static let refreshMarginNanos: UInt64 = 300 * 1_000_000_000

    let kind: Kind
    private let cached = Mutex<(token: String, expiresAt: UInt64)?>(nil)

    init(kind: Kind) { self.kind = kind }

    /// Reads a service-account JSON key. Throws a ValidationError-free ConnectionError naming the file and
    /// what is wrong with it, so a bad key stops the daemon at start.
    static func serviceAccount(path: String) throws(MemoryError) -> TokenSource {
        guard let text = TextFile.read(path) else {
            throw .connection(
                "firestore.credentials_path \(Validation.show(path)) cannot be read: \(String(cString: strerror(errno)))"
            )
        }
        let key: JSONValue
        do { key = try JSONValue.parse(text) } catch {
            throw .connection("firestore.credentials_path \(Validation.show(path)) is not JSON: \(error)")
        }
        guard let email = key["client_email"]?.stringValue, let pem = key["private_key"]?.stringValue else {
            throw .connection(
                "firestore.credentials_path \(Validation.show(path)) is not a service-account key (no client_email/private_key)"
            )
        }
        let tokenURI = key["token_uri"]?.stringValue ?? "https://oauth2.googleapis.com/token"
        do {
            return TokenSource(kind: .serviceAccount(email: email, tokenURI: tokenURI, signer: try RSASigner(pem: pem)))
        } catch {
            throw .connection("firestore.credentials_path \(Validation.show(path)): \(error.message)")
        }
    }

    var isEmulator: Bool {
        if case .emulator = kind { return true }
        return false
    }

    /// Drops the cached token (after a 401), so the next request fetches a new one.
    func invalidate() { cached.withLock { $0 = nil } }

    /// The `Authorization` header value, fetching a token when none is cached or it is about to expire.
    func authorization(http: HTTPClient, timeoutMs: Int) throws(MemoryError) -> String {
        if case .emulator = kind { return "Bearer owner" }
        let now = monotonicNanos()
        if let c = cached.withLock({ $0 }), c.expiresAt > now &+ Self.refreshMarginNanos { return "Bearer \(c.token)" }
        let (token, lifetime) = try fetch(http: http, timeoutMs: timeoutMs)
        let expiresAt = monotonicNanos() &+ UInt64(max(0, lifetime) * 1e9)
        cached.withLock { $0 = (token, expiresAt) }
        return "Bearer \(token)"
    }

    private func fetch(http: HTTPClient, timeoutMs: Int) throws(MemoryError) -> (String, Double) {
        let op = "firestore.auth"
        let response: HTTPResponse
        do {
            switch kind {
            case .emulator:
                return ("owner", 1e9)
            case .serviceAccount(let email, let tokenURI, let signer):
                let assertion = try jwt(email: email, audience: tokenURI, signer: signer)
                let body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=\(assertion)"
                response = try http.request(
                    .post, url: tokenURI, headers: ["Content-Type: application/x-www-form-urlencoded"],
                    body: Array(body.utf8), timeoutMs: timeoutMs)
            case .metadataServer(let url):
                response = try http.request(
                    .get, url: url + "/computeMetadata/v1/instance/service-accounts/default/token",
                    headers: ["Metadata-Flavor: Google"], timeoutMs: timeoutMs)
            }
        } catch let error as CurlError {
            throw .connection("auth to backend failed: token endpoint unreachable: \(error)", operation: op)
        } catch let error as AuthError {
            throw .connection("auth to backend failed: \(error.message)", operation: op)
        } catch {
            throw .connection("auth to backend failed: \(error)", operation: op)
        }
        guard response.status == 200 else {
            let text = String(decoding: response.body.prefix(300), as: UTF8.self)
            throw .connection(
                "auth to backend failed: token endpoint answered HTTP \(response.status): \(text)", operation: op)
        }
        guard let json = try? JSONValue.parse(bytes: response.body), let token = json["access_token"]?.stringValue,
            !token.isEmpty
        else {
            throw .connection("auth to backend failed: token endpoint answered without access_token", operation: op)
        }
        return (token, json["expires_in"]?.numberValue ?? 3600)
    }

    /// `base64url(header).base64url(claims).base64url(RS256 signature)`.
    private func jwt(email: String, audience: String, signer: RSASigner) throws(AuthError) -> String {
        let now = Double(Timestamp.now().seconds)
        let header = JSONValue.object(["alg": .string("RS256"), "typ": .string("JWT")])
        let claims = JSONValue.object([
            "iss": .string(email), "sub": .string(email), "aud": .string(audience), "scope": .string(Self.scope),
            "iat": .number(now), "exp": .number(now + 3600),
        ])
        let signingInput =
            Base64URL.encode(Array(header.serialized().utf8)) + "." + Base64URL.encode(Array(claims.serialized().utf8))
        let signature = try signer.signRS256(Array(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(signature)
    }
}
