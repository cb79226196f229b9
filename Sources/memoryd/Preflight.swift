import Logging
import MemoryBackends
import MemoryDomain
import MemoryServer

#if canImport(Glibc)
import Glibc
#endif

/// What the start checks beyond the values' types and ranges, and what `--check-config` reports: the
/// daemon's own checks (the socket's group and directory, the allow-lists' ids) and the backend's
/// (`BackendRegistration.preflight`).
enum Preflight {
    /// Errors the start refuses (exit 2), before anything is opened.
    static func startErrors(_ config: DaemonConfig) -> [ConfigFinding] {
        var out: [ConfigFinding] = []
        if !config.socketGroup.isEmpty, UInt32(config.socketGroup) == nil, getgrnam(config.socketGroup) == nil {
            out.append(ConfigFinding(.error, key: "socket_group", "group \"\(config.socketGroup)\" does not exist"))
        }
        return out
    }

    /// Everything `--check-config` looks at: the start's errors, then warnings and the backend's findings.
    static func all(_ config: DaemonConfig, logger: Logger) -> [ConfigFinding] {
        var out = startErrors(config)
        if let dir = parentDirectory(config.socketPath) {
            var st = stat()
            if stat(dir, &st) == 0 {
                if st.st_mode & S_IFMT != S_IFDIR {
                    out.append(ConfigFinding(.error, key: "socket_path", "\(dir) is not a directory"))
                } else if access(dir, W_OK | X_OK) != 0 {
                    out.append(
                        ConfigFinding(
                            .warning, key: "socket_path",
                            "\(dir) is not writable by uid \(geteuid()): only a socket systemd activates can be used"))
                }
            } else if let parent = parentDirectory(dir), access(parent, W_OK | X_OK) != 0 {
                out.append(
                    ConfigFinding(
                        .error, key: "socket_path", "\(dir) does not exist and cannot be created in \(parent)"))
            }
        }
        for uid in config.allowedUIDs where getpwuid(uid) == nil {
            out.append(ConfigFinding(.warning, key: "allowed_uids", "no user has uid \(uid) on this host"))
        }
        for gid in config.allowedGIDs where getgrgid(gid) == nil {
            out.append(ConfigFinding(.warning, key: "allowed_gids", "no group has gid \(gid) on this host"))
        }
        if let registration = BackendCatalog.named(config.backend) {
            out += registration.preflight(config, logger)
        }
        return out
    }

    static func parentDirectory(_ path: String) -> String? {
        guard let slash = path.lastIndex(of: "/") else { return nil }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `--check-config`'s report: which file, the effective configuration with each value's source, the
    /// findings. Returns the exit status: 2 when the start would refuse, else 0.
    static func report(_ config: DaemonConfig, configPath: String, logger: Logger) -> Int32 {
        let findings = all(config, logger: logger)
        let keys = BackendCatalog.named(config.backend)?.keys.map(\.name) ?? []
        var out = "# memoryd \(Server.version) --check-config\n"
        if let file = config.configFile {
            out += "# configuration file: \(file)\n"
        } else {
            out += "# configuration file: none (\(configPath) does not exist): defaults, environment and flags\n"
        }
        out +=
            "# effective configuration (backend \(config.backend), \(config.workerCount) workers), each value's source after #:\n"
        out += config.effectiveTOML(backendKeys: keys) + "\n"
        print(out, terminator: "")
        fflush(nil)
        for f in findings { writeStderr("memoryd: \(f)") }
        if findings.contains(where: { $0.severity == .error }) {
            writeStderr("memoryd: the configuration is not usable: the start would refuse it (exit 2)")
            return 2
        }
        writeStderr("memoryd: the configuration is valid\(findings.isEmpty ? "" : " (with warnings)")")
        return 0
    }

    /// The start's one health probe after opening the backend: a backend that does not answer is logged as
    /// a warning, and memoryd serves anyway (it may come up later; calls fail with ConnectionError meanwhile).
    static func probe(_ backend: StoreBackend, logger: Logger) {
        let health: BackendHealth
        do {
            let connection = try backend.makeConnection()
            defer { connection.close() }
            health = connection.health(context: CallContext(deadline: .after(milliseconds: 5000)))
        } catch {
            logger.warning(
                "the backend did not answer its first health probe; serving anyway",
                metadata: ["backend": "\(backend.name)", "error": "\(error)"])
            return
        }
        guard health.status != .healthy else { return }
        logger.warning(
            "the backend did not answer its first health probe; serving anyway",
            metadata: [
                "backend": "\(backend.name)", "status": "\(health.status.rawValue)", "reason": "\(health.reason)",
            ])
    }
}

func writeStderr(_ message: String) {
    var bytes = Array((message + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
