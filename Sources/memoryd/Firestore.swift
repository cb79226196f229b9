import Logging
import MemoryCore

func makeFirestoreBackend(_ cfg: DaemonConfig, logger: Logger) throws -> StoreBackend {
    throw ConfigError(key: "backend", "firestore is not built into this binary yet")
}
