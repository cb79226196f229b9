import Logging
import MemoryDomain
import MemoryFirestore

/// Maps the daemon's configuration onto the Firestore backend's.
func makeFirestoreBackend(_ cfg: DaemonConfig, logger: Logger) throws -> StoreBackend {
    var f = FirestoreConfig(projectID: cfg.firestore.projectID)
    f.database = cfg.firestore.database
    f.namespace = cfg.namespace
    f.credentialsPath = cfg.firestore.credentialsPath.isEmpty ? nil : cfg.firestore.credentialsPath
    f.emulatorHost = cfg.firestore.emulatorHost.isEmpty ? nil : cfg.firestore.emulatorHost
    // Every worker owns one backend connection, so the pool size is the worker count.
    f.poolSize = cfg.workerCount
    f.batchSize = cfg.firestore.batchSize
    f.requestTimeoutMs = cfg.firestore.requestTimeoutMs
    f.maxRetries = cfg.firestore.maxRetries
    f.failureThreshold = cfg.circuitBreaker.failureThreshold
    f.recoveryTimeoutS = cfg.circuitBreaker.recoveryTimeoutS
    return try FirestoreBackend(config: f, limits: cfg.limits, logger: logger)
}
