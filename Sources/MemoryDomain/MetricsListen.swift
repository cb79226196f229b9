/// Where the metrics endpoint listens (`metrics_listen`): a loopback TCP address or a Unix socket. Anything
/// reachable from another host is refused when the configuration is read: the endpoint has no
/// authentication, so the operator's choice of socket is its only gate.
public enum MetricsListen: Sendable, Equatable, CustomStringConvertible {
    /// `127.0.0.1:9464`, `localhost:9464` (= 127.0.0.1) or `[::1]:9464`; port 0 picks a free port.
    case tcp(host: String, port: UInt16)
    /// `unix:/run/memoryd/metrics.sock`, created with `socket_mode` and `socket_group` like the memory socket.
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }

    /// nil for "" (off). Throws naming `metrics_listen` for a malformed or non-loopback address.
    public static func parse(_ s: String) throws(ConfigError) -> MetricsListen? {
        let key = "metrics_listen"
        if s.isEmpty { return nil }
        if s.hasPrefix("unix:") {
            let path = String(s.dropFirst(5))
            guard path.hasPrefix("/"), path.utf8.count < 108 else {
                throw ConfigError(key: key, "\"\(s)\": the socket path must be absolute and under 108 bytes")
            }
            return .unix(path: path)
        }
        var host: Substring
        let portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else {
                throw ConfigError(key: key, "\"\(s)\" is not [IPv6]:PORT")
            }
            host = s[s.index(after: s.startIndex)..<close]
            portText = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":") else {
                throw ConfigError(key: key, "\"\(s)\" is not 127.0.0.1:PORT or unix:/path")
            }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
        }
        guard let port = UInt16(portText) else {
            throw ConfigError(key: key, "\"\(s)\": the port must be 0 to 65535")
        }
        if host == "localhost" { host = "127.0.0.1" }
        guard isLoopback(String(host)) else {
            throw ConfigError(
                key: key,
                "\"\(s)\" is not a loopback address: the endpoint has no authentication, so it listens only on 127.0.0.0/8, [::1] or a Unix socket (put a proxy in front to expose it)"
            )
        }
        return .tcp(host: String(host), port: port)
    }

    /// 127.0.0.0/8 in dotted quads, or ::1.
    static func isLoopback(_ host: String) -> Bool {
        if host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ p in p.count <= 3 && UInt8(p) != nil }) else { return false }
        return parts[0] == "127"
    }
}
