import CCrypto

/// An RSA private key loaded from PEM, signing with RS256 (RSASSA-PKCS1-v1_5 over SHA-256) through OpenSSL EVP.
final class RSASigner: @unchecked Sendable {
    // EVP_PKEY is immutable after loading and EVP_DigestSign* use a fresh context per call, so one key
    // may sign from several threads at once.
    private let key: OpaquePointer

    /// - Throws: a message naming what OpenSSL refused.
    init(pem: String) throws(AuthError) {
        let bytes = Array(pem.utf8)
        let loaded: OpaquePointer? = bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let loaded else { throw AuthError("cannot read the private key: \(Self.opensslError())") }
        key = loaded
    }

    deinit { EVP_PKEY_free(key) }

    func signRS256(_ message: [UInt8]) throws(AuthError) -> [UInt8] {
        guard let ctx = EVP_MD_CTX_new() else { throw AuthError("EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, EVP_sha256(), nil, key) == 1 else {
            throw AuthError("EVP_DigestSignInit failed: \(Self.opensslError())")
        }
        var length = 0
        guard EVP_DigestSign(ctx, nil, &length, message, message.count) == 1 else {
            throw AuthError("EVP_DigestSign (size) failed: \(Self.opensslError())")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(ctx, &signature, &length, message, message.count) == 1 else {
            throw AuthError("EVP_DigestSign failed: \(Self.opensslError())")
        }
        return Array(signature.prefix(length))
    }

    private static func opensslError() -> String {
        let code = ERR_get_error()
        guard code != 0 else { return "unknown OpenSSL error" }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buf, buf.count)
        while ERR_get_error() != 0 {}
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

struct AuthError: Error, Sendable, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
