import MemoryDomain

/// The server as its connections see it (``ConnectionOwner``); the rest of the conformance is in
/// Server+Dispatch (frames), Server+Completions (output) and Server+Accept (closing).
extension Server: ConnectionOwner {
    func connectionViolatedProtocol(_ connection: Connection, kind: ProtocolViolation) {
        stats.protocolErrors.add(1, ordering: .relaxed)
        metrics?.recordViolation(kind)
    }

    func connection(_ connection: Connection, abandonedCalls count: Int) {
        stats.inFlight.subtract(count, ordering: .relaxed)
    }
}
