import CLibUV
import Logging
import MemoryDomain
import MemoryUtilities
import MemoryWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Accepting connections: the listening socket (bound or activated), peer credentials and the allow-lists.
extension Server {
    // MARK: - Listening

    func listen() throws {
        let l = uvAllocate(uv_pipe_t.self)
        try uvCheck(uv_pipe_init(loop, l, 0), "uv_pipe_init")
        listener = l
        l.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        if let fd = try systemd.listenFD() {
            try uvCheck(uv_pipe_open(l, fd), "uv_pipe_open(activated fd \(fd))")
            // The unit's ListenStream= decides the path; socket_path is not used.
            servingPath = SocketPath.boundPath(fd) ?? "activated fd \(fd)"
            logger.info("using the socket systemd activated", metadata: ["fd": "\(fd)", "socket": "\(servingPath)"])
        } else {
            try SocketPath.prepare(config.socketPath)
            try uvCheck(uv_pipe_bind(l, config.socketPath), "uv_pipe_bind(\(config.socketPath))")
            ownsSocketPath = true
            try SocketPath.setPermissions(config.socketPath, mode: config.socketMode, group: config.socketGroup)
        }
        try uvCheck(
            uv_listen(cuv_stream(l), 1024) { server, status in
                let s = Unmanaged<Server>.fromOpaque(server!.pointee.data).takeUnretainedValue()
                if status < 0 {
                    s.logger.warning("accept failed", metadata: ["error": "\(String(cString: uv_strerror(status)))"])
                    return
                }
                s.accept()
            }, "uv_listen(\(config.socketPath))")
    }

    func accept() {
        guard let listener else { return }
        let h = uvAllocate(uv_pipe_t.self)
        uvMust(uv_pipe_init(loop, h, 0), "uv_pipe_init")
        do {
            try uvCheck(uv_accept(cuv_stream(listener), cuv_stream(h)), "uv_accept")
        } catch {
            logger.debug("accept failed", metadata: ["error": "\(error)"])
            uvCloseAndFree(h)
            return
        }
        var fd: uv_os_fd_t = -1
        uvMust(uv_fileno(cuv_handle(h), &fd), "uv_fileno")
        let peer = peerCredentials(fd)
        let id = nextConnectionID
        nextConnectionID += 1
        let conn = Connection(id: id, handle: h, owner: self, peer: peer, logger: logger)
        h.pointee.data = Unmanaged.passUnretained(conn).toOpaque()
        connections[id] = conn
        stats.connections.add(1, ordering: .relaxed)

        let peerMetadata: Logger.Metadata = [
            "peer.uid": "\(peer.uid)", "peer.gid": "\(peer.gid)", "peer.pid": "\(peer.pid)",
        ]
        if draining {
            conn.goAway(.unavailable, "server is shutting down")
        } else if !isAllowed(peer) {
            // Checked before max_connections so that a refused peer learns nothing about the server's load.
            logger.warning("connection refused: peer not in allowed_uids/allowed_gids", metadata: peerMetadata)
            metrics?.peerRefusals.add()
            conn.goAway(
                .permissionDenied,
                peer.known
                    ? "permission denied: uid \(peer.uid) (gid \(peer.gid)) is not allowed: it is in neither allowed_uids nor allowed_gids"
                    : "permission denied: memoryd could not read the peer's credentials (SO_PEERCRED)")
        } else if connections.count > config.maxConnections {
            logger.warning(
                "connection refused: max_connections reached", metadata: ["max_connections": "\(config.maxConnections)"]
            )
            conn.goAway(.resourceExhausted, "too many connections (max_connections is \(config.maxConnections))")
        } else {
            conn.logger.debug("connection accepted", metadata: peerMetadata)
            conn.startReading()
        }
        flushOutput()
    }

    func peerCredentials(_ fd: uv_os_fd_t) -> PeerCredentials {
        var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        guard cuv_peer_cred(fd, &pid, &uid, &gid) == 0 else {
            logger.warning("SO_PEERCRED failed", metadata: ["error": "\(String(cString: strerror(errno)))"])
            return PeerCredentials(pid: 0, uid: .max, gid: .max, known: false)
        }
        var peer = PeerCredentials(pid: pid, uid: uid, gid: gid)
        if !config.allowedGIDs.isEmpty {
            var groups = [UInt32](repeating: 0, count: 256)
            let n = cuv_peer_groups(fd, &groups, Int32(groups.count))
            if n > 0 { peer.groups = Array(groups[0..<Int(n)]) }
        }
        return peer
    }

    /// With no allow-lists, the socket's permissions decide. Otherwise the peer's uid, primary gid or a
    /// supplementary group must be listed (root and memoryd's own uid too: the lists are exactly who may).
    func isAllowed(_ peer: PeerCredentials) -> Bool {
        if config.allowedUIDs.isEmpty && config.allowedGIDs.isEmpty { return true }
        guard peer.known else { return false }
        if config.allowedUIDs.contains(peer.uid) { return true }
        return config.allowedGIDs.contains(peer.gid) || peer.groups.contains(where: config.allowedGIDs.contains)
    }

    func connectionDidClose(_ conn: Connection) {
        connections[conn.id] = nil
        stats.connections.subtract(1, ordering: .relaxed)
        if draining && connections.isEmpty { finishDrain() }
    }
}
