import Logging
import MemoryUtilities

/// What a migration did (`memoryd migrate`): its last line, and its exit status (0 only when nothing failed).
public struct MigrationSummary: Sendable, Equatable {
    /// Documents or items looked at.
    public var scanned = 0
    /// Rewritten (in place) or copied; with `dryRun`, those that would be.
    public var converted = 0
    /// Already in the wanted shape, or already present and equal in the target: nothing to do.
    public var current = 0
    /// Could not be read, converted or copied; each one was logged with its id.
    public var failed = 0

    public init(scanned: Int = 0, converted: Int = 0, current: Int = 0, failed: Int = 0) {
        self.scanned = scanned
        self.converted = converted
        self.current = current
        self.failed = failed
    }

    /// `scanned N, converted M, current K, failed F`.
    public var line: String { "scanned \(scanned), converted \(converted), current \(current), failed \(failed)" }

    public static func + (a: Self, b: Self) -> Self {
        Self(
            scanned: a.scanned + b.scanned, converted: a.converted + b.converted, current: a.current + b.current,
            failed: a.failed + b.failed)
    }
}

/// How an in-place conversion runs.
public struct InPlaceMigrationOptions: Sendable {
    /// The older layout, as `memoryd migrate --from` names it (`v1`).
    public var format: String
    /// Back to the older layout (the rollback path) instead of from it.
    public var revert: Bool
    /// Read and classify only; write nothing (`converted` then counts what would be converted).
    public var dryRun: Bool
    /// Embeddings of another length are reported as failed, not converted: memoryd could not search them.
    public var embeddingDimension: Int

    public init(format: String, revert: Bool = false, dryRun: Bool = false, embeddingDimension: Int = 768) {
        self.format = format
        self.revert = revert
        self.dryRun = dryRun
        self.embeddingDimension = embeddingDimension
    }
}

/// A backend that can rewrite, in place, what an older system left in its store into the layout memoryd
/// serves (and back). The Firestore backend implements it for `v1`, the original memory manager's documents.
/// `memoryd migrate --from FORMAT` reaches it through the backend's registration
/// (``BackendRegistration/legacyFormats``) without naming the backend.
public protocol InPlaceMigrating: StoreBackend {
    /// Converts every document of the configured namespace; safe while daemons serve the same store.
    /// - Parameters:
    ///   - progress: called now and then with the figures so far (for a progress line).
    /// - Returns: the figures; failed documents were logged (warning) with their id and why.
    /// - Throws: when the store cannot be read at all (unreachable, refused credentials).
    func migrateInPlace(
        _ options: InPlaceMigrationOptions, logger: Logger, progress: (MigrationSummary) -> Void
    ) throws(MemoryError) -> MigrationSummary
}
