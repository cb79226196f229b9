import MemoryPosix

#if canImport(Glibc)
import Glibc
#endif

/// Preparing the socket's path: a stale socket file is replaced only when nothing listens on it.
enum SocketPath {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func prepare(_ path: String) throws(Failure) {
        // Create the parent directory if missing (not under systemd, where RuntimeDirectory= does it).
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            let dir = String(path[..<slash])
            var st = stat()
            if stat(dir, &st) != 0 {
                if mkdir(dir, 0o755) != 0 && errno != EEXIST {
                    throw Failure(
                        description: "cannot create the socket directory \(dir): \(String(cString: strerror(errno)))")
                }
            }
        }
        var st = stat()
        guard lstat(path, &st) == 0 else { return }  // nothing there
        guard st.st_mode & S_IFMT == S_IFSOCK else {
            throw Failure(description: "\(path) exists and is not a socket; refusing to replace it")
        }
        if isListening(path) {
            throw Failure(description: "\(path) is in use: another memoryd (or something else) listens on it")
        }
        if unlink(path) != 0 && errno != ENOENT {
            throw Failure(description: "cannot remove the stale socket \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// True when a connect() to the path succeeds.
    static func isListening(_ path: String) -> Bool {
        guard case .success(let fd) = UnixSocket.connect(path) else { return false }
        close(fd)
        return true
    }

    static func setPermissions(_ path: String, mode: UInt32, group: String) throws(Failure) {
        if chmod(path, mode_t(mode)) != 0 {
            throw Failure(description: "chmod \(String(mode, radix: 8)) \(path): \(String(cString: strerror(errno)))")
        }
        guard !group.isEmpty else { return }
        var gid: gid_t
        if let numeric = UInt32(group) {
            gid = numeric
        } else {
            guard let g = getgrnam(group) else {
                throw Failure(description: "socket_group \"\(group)\" does not exist")
            }
            gid = g.pointee.gr_gid
        }
        if chown(path, uid_t.max, gid) != 0 {
            throw Failure(description: "chgrp \(group) \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// The path a listening AF_UNIX socket is bound to (getsockname), nil for an abstract or unnamed one.
    static func boundPath(_ fd: Int32) -> String? {
        var addr = sockaddr_un()
        var len = socklen_t(MemoryLayout<sockaddr_un>.size)
        let rc = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        guard rc == 0, Int(len) > pathOffset else { return nil }
        return withUnsafeBytes(of: &addr.sun_path) { raw -> String? in
            let bytes = raw.prefix(Int(len) - pathOffset)
            guard let first = bytes.first, first != 0 else { return nil }
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
