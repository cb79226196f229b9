import ArgumentParser

/// memory-bench: measured speed of memoryd against Redis, the original system's workload (V1 baseline) on
/// the Firestore emulator, numpy for exact vector search, and memoryd's memory use. `scripts/bench` runs
/// the whole set; each subcommand can run alone against a daemon the caller started.
@main
struct MemoryBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory-bench",
        abstract: "Benchmarks for memoryd.",
        subcommands: [Transport.self, MetricsOverhead.self, Allocs.self, Vector.self, Memory.self, Seed.self])
}
