import ArgumentParser
import Logging
import MemoryBackends
import MemoryDomain
import MemoryServer
import MemoryUtilities
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `memoryd migrate`: converts the original manager's documents in place (`--from v1`), or copies a namespace
/// between backends (`--from sqlite --to firestore` and back). Configured like the daemon: the same file,
/// `MEMORYD_*` variables and backend flags. Backends are reached through their registrations only.
struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memoryd migrate",
        abstract: "Convert the original memory manager's data in place, or copy a namespace between backends.",
        discussion: """
            memoryd migrate --from v1 [--dry-run] [--revert]

            Rewrites, in place, the documents the original memory manager left in Firestore: embeddings stored \
            as plain lists become vector values (so semantic search finds them) and a missing \
            metadata.content_hash is filled. --revert turns vectors back into lists, for the old manager. Safe \
            while daemons serve the same database; a rerun converts nothing.

            memoryd migrate --from sqlite --to firestore (and --from firestore --to sqlite)

            Copies the namespace's memory items and agent data (ids, timestamps, expirations, embeddings, \
            metadata), skips what the target already holds equal, and verifies counts and a checksum.

            Configured as the daemon is: --config, MEMORYD_* variables, the flags below. Progress goes to \
            stderr when it is a terminal; the last line is "scanned N, converted M, current K, failed F"; the \
            exit status is 0 only when nothing failed (1 otherwise, 2 for a bad configuration).

            Example: memoryd migrate --from v1 --dry-run --project-id my-project

            \(BackendFlags.help)
            """)

    @Option(help: "v1 (convert in place), or the backend to copy from: \(Migrate.backendNames).")
    var from: String
    @Option(help: "The backend to copy to (with --from \(Migrate.backendNames)).")
    var to: String?
    @Flag(help: "Read and count only; write nothing (converted = would be converted or copied).")
    var dryRun = false
    @Flag(help: "With --from v1: turn vector embeddings back into plain lists (the old manager's shape).")
    var revert = false
    @Option(help: "TOML configuration file (optional when the default is missing).")
    var config: String = DaemonConfig.defaultPath
    @Option(help: "Which namespace's collections and tables (namespace).") var namespace: String?
    @Option(help: "Directory of the sqlite databases (data_dir).") var dataDir: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (log_level).") var logLevel: String?
    @Argument(parsing: .allUnrecognized, help: .hidden) var backendArguments: [String] = []

    static var backendNames: String { BackendCatalog.all.map(\.name).joined(separator: ", ") }

    func validate() throws {
        _ = try BackendFlags.parse(backendArguments)
        if let to {
            guard BackendCatalog.named(from) != nil else {
                throw ValidationError("--from \(from) with --to: --from must be a backend (\(Self.backendNames))")
            }
            guard BackendCatalog.named(to) != nil else {
                throw ValidationError("--to \(to) is not a backend: \(Self.backendNames)")
            }
            guard BackendCatalog.named(from)!.name != BackendCatalog.named(to)!.name else {
                throw ValidationError("--from and --to name the same backend")
            }
            if revert { throw ValidationError("--revert goes with --from v1, not with a copy") }
        } else {
            guard BackendCatalog.all.contains(where: { $0.legacyFormats.contains(from) }) else {
                if BackendCatalog.named(from) != nil {
                    throw ValidationError("--from \(from) copies a namespace: say where to with --to")
                }
                let formats = BackendCatalog.all.flatMap(\.legacyFormats)
                throw ValidationError(
                    "--from \(from) is neither a format memoryd converts (\(formats.joined(separator: ", "))) nor a backend (\(Self.backendNames))"
                )
            }
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        var flags = try BackendFlags.parse(backendArguments)
        flags["namespace"] = namespace
        flags["data_dir"] = dataDir
        flags["log_level"] = logLevel
        let cfg: DaemonConfig
        do {
            cfg = try Memoryd.loadConfig(path: config, flags: flags)
        } catch {
            fail("memoryd migrate: invalid configuration: \(error)")
        }
        StderrLogHandler.sharedLevel.store(Logger.Level(rawValue: cfg.logLevel)!.rank, ordering: .relaxed)
        // Logs leave the progress line first, so warnings never end up glued to it.
        LoggingSystem.bootstrap { ProgressClearingLogHandler(inner: StderrLogHandler(label: $0)) }
        let logger = Logger(label: "memoryd.migrate")

        let started = monotonicNanos()
        let summary: MigrationSummary
        if let to {
            summary = try copy(from: BackendCatalog.named(from)!, to: BackendCatalog.named(to)!, cfg, logger)
        } else {
            summary = try convert(cfg, logger)
        }
        Progress.clear()
        let seconds = Double(monotonicNanos() - started) / 1e9
        print(
            "namespace \(cfg.namespace): done in \((seconds * 10).rounded() / 10) s\(dryRun ? " (dry run: nothing written)" : "")"
        )
        print(summary.line)
        if summary.failed > 0 { throw ExitCode(1) }
    }

    /// `--from v1`: the backend that knows the format converts in place.
    func convert(_ cfg: DaemonConfig, _ logger: Logger) throws -> MigrationSummary {
        let registration =
            BackendCatalog.all.first { $0.answers(to: cfg.backend) && $0.legacyFormats.contains(from) }
            ?? BackendCatalog.all.first { $0.legacyFormats.contains(from) }!
        let store = open(registration, cfg, logger)
        defer { store.shutdown() }
        guard let migrating = store as? InPlaceMigrating else {
            fail("memoryd migrate: the \(registration.name) backend declares \(from) but cannot convert it")
        }
        let options = InPlaceMigrationOptions(
            format: from, revert: revert, dryRun: dryRun, embeddingDimension: cfg.embeddingDimension)
        do throws(MemoryError) {
            return try migrating.migrateInPlace(options, logger: logger) { Progress.show($0.line) }
        } catch {
            Progress.clear()
            failRun("memoryd migrate: \(error.message)")
        }
    }

    /// `--from A --to B`: a copy through the store interface.
    func copy(from: BackendRegistration, to: BackendRegistration, _ cfg: DaemonConfig, _ logger: Logger) throws
        -> MigrationSummary
    {
        let source = open(from, cfg, logger)
        let target = open(to, cfg, logger)
        defer {
            source.shutdown()
            target.shutdown()
        }
        do throws(MemoryError) {
            let sourceConnection = try source.makeConnection()
            let targetConnection = try target.makeConnection()
            defer {
                sourceConnection.close()
                targetConnection.close()
            }
            let copy = StoreCopy(source: sourceConnection, target: targetConnection, logger: logger)
            copy.dryRun = dryRun
            copy.embeddingDimension = cfg.embeddingDimension
            let (summary, verification) = try copy.run { Progress.show($0.line) }
            Progress.clear()
            if let v = verification {
                let checksum = String(v.sourceChecksum.prefix(16))
                if v.isComplete {
                    print(
                        "verified: the \(to.name) namespace \(cfg.namespace) holds all \(v.sourceCount) records of the \(from.name) one, equal (checksum \(checksum))"
                            + (v.extraInTarget > 0 ? "; it also holds \(v.extraInTarget) others" : ""))
                } else {
                    print(
                        "NOT verified: \(v.mismatched.count) of \(v.sourceCount) records are missing or different in \(to.name) (checksums \(checksum) and \(v.targetChecksum.prefix(16)))"
                    )
                }
            }
            return summary
        } catch {
            Progress.clear()
            failRun("memoryd migrate: \(error.message)")
        }
    }

    func open(_ registration: BackendRegistration, _ cfg: DaemonConfig, _ logger: Logger) -> StoreBackend {
        do {
            try registration.validate(cfg)
            return try registration.open(cfg, logger)
        } catch {
            fail("memoryd migrate: cannot open the \(registration.name) backend: \(error)")
        }
    }
}

/// Stops a migration that could not go on (the store unreachable, credentials refused): exit status 1, as for
/// failed documents; 2 stays for a bad configuration.
func failRun(_ message: String) -> Never {
    writeStderr(message)
    exit(1)
}

/// The progress line on stderr, drawn only when stderr is a terminal.
enum Progress {
    private static let shown = Mutex<String?>(nil)
    static let enabled = isatty(2) == 1

    static func show(_ text: String) {
        guard enabled else { return }
        shown.withLock { current in
            current = text
            write("\r\u{1B}[K" + text)
        }
    }

    static func clear() {
        guard enabled else { return }
        shown.withLock { current in
            if current != nil { write("\r\u{1B}[K") }
            current = nil
        }
    }

    /// Runs `body` (a log write) with the line erased, then draws it again.
    static func around(_ body: () -> Void) {
        guard enabled else { return body() }
        shown.withLock { current in
            if current != nil { write("\r\u{1B}[K") }
            body()
            if let current { write(current) }
        }
    }

    private static func write(_ s: String) {
        var bytes = Array(s.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

/// StderrLogHandler, with the progress line erased while a log line is written.
struct ProgressClearingLogHandler: LogHandler {
    var inner: StderrLogHandler

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }
    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) { Progress.around { inner.log(event: event) } }
}
