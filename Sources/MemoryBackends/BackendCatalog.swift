import MemoryDomain
import MemoryFirestore
import MemorySQLite

/// Every backend this build of memoryd has. A new backend is a new target with a `registration`, plus one
/// line here.
public enum BackendCatalog {
    public static let all: [BackendRegistration] = [
        SQLiteBackend.registration,
        FirestoreBackend.registration,
    ]

    /// The registration of a backend by name or alias.
    public static func named(_ name: String) -> BackendRegistration? { all.first { $0.answers(to: name) } }
}
