import MemoryTestSupport

/// A daemon on the Firestore backend pointed at `hole`, a backend that accepts requests and never answers:
/// every backend call hangs for `firestore.request_timeout_ms` (10 minutes here, so for the whole test) or
/// until its deadline. With one worker, the first call that reaches the backend keeps that worker busy, which
/// is how tests get a stuck worker or a queue that does not move, without depending on speed.
func startDaemonWithHangingBackend(_ hole: BlackHole, _ extraEnv: [String: String] = [:]) throws -> DaemonProcess {
    var env = [
        "MEMORYD_EMBEDDING_DIMENSION": "8", "MEMORYD_BACKEND": "firestore",
        "MEMORYD_FIRESTORE_EMULATOR_HOST": hole.hostPort, "MEMORYD_FIRESTORE_PROJECT_ID": "memoryd-test",
        "MEMORYD_FIRESTORE_REQUEST_TIMEOUT_MS": "600000", "MEMORYD_FIRESTORE_MAX_RETRIES": "0",
        "MEMORYD_WORKERS": "1",
    ]
    for (k, v) in extraEnv { env[k] = v }
    let d = DaemonProcess(environment: env)
    try d.start()
    return d
}
