// swift-tools-version:6.0
import PackageDescription

// Layers, bottom to top (docs/architecture.md says what each may import):
//   C shims (one target per C library)
//   -> MemoryUtilities, MemoryPosix (no domain knowledge)
//   -> MemoryDomain (model, errors, validation, store interface, config, backend registry; pure Swift)
//   -> MemoryWire (frames, protobuf-c conversion)
//   -> backends (MemorySQLite, MemoryFirestore), MemoryServer, MemoryClient
//   -> thin executables (memoryd, memoryctl, memory-bench, memory-load).
let package = Package(
    name: "memoryd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "memoryd", targets: ["memoryd"]),
        .executable(name: "memoryctl", targets: ["memoryctl"]),
        .executable(name: "memory-bench", targets: ["memory-bench"]),
        .executable(name: "memory-load", targets: ["memory-load"]),
        .library(name: "MemoryClient", targets: ["MemoryClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C shims: only what Swift cannot import directly.
        .target(name: "CLibUV", linkerSettings: [.linkedLibrary("uv")]),
        .target(
            name: "CMemoryProto", cSettings: [.unsafeFlags(["-w"])], linkerSettings: [.linkedLibrary("protobuf-c")]),
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        .systemLibrary(name: "CSQLite3"),
        // The embedding index's SIMD inner loops (C vector extensions; plain -O2, no -march).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O2"])]),
        .systemLibrary(name: "CSystemd"),
        .systemLibrary(name: "CCrypto"),
        // libmicrohttpd, the metrics endpoint's HTTP parser: its variadic calls pinned to fixed signatures.
        .target(name: "CMicroHTTPD", linkerSettings: [.linkedLibrary("microhttpd")]),

        // Small utilities with no C and no domain knowledge: JSON, TOML, SHA-256, time, text files.
        .target(name: "MemoryUtilities"),
        // POSIX calls Swift can make directly, behind one errno funnel: Unix sockets, EINTR retries.
        .target(name: "MemoryPosix"),
        // Metric primitives (lock-free counters, gauges, duration histograms), their registry and the Prometheus
        // text format. Pure Swift, no domain knowledge.
        .target(name: "MemoryMetrics", dependencies: ["MemoryUtilities"]),
        // The domain: model, errors, validation (MemoryService), the store interface, configuration and
        // the backend registry. Pure Swift.
        .target(
            name: "MemoryDomain",
            dependencies: ["MemoryUtilities", "MemoryMetrics", .product(name: "Logging", package: "swift-log")]),
        // The wire: frames and their length prefix, protobuf-c <-> domain conversion. The only module
        // touching generated structs.
        .target(name: "MemoryWire", dependencies: ["MemoryDomain", "MemoryUtilities", "CMemoryProto"]),
        // Backends behind MemoryDomain.StoreBackend, each registering itself (see `registration`).
        .target(
            name: "MemorySQLite",
            dependencies: [
                "MemoryDomain", "MemoryUtilities", "MemoryMetrics", "CSQLite3", "CKernels",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "MemoryFirestore",
            dependencies: [
                "MemoryDomain", "MemoryUtilities", "CCurl", "CCrypto", .product(name: "Logging", package: "swift-log"),
            ]),
        // Every backend of this build, by name: the one list a new backend is added to.
        .target(name: "MemoryBackends", dependencies: ["MemoryDomain", "MemorySQLite", "MemoryFirestore"]),
        // The daemon: libuv loop, connections, worker pool, systemd integration.
        .target(
            name: "MemoryServer",
            dependencies: [
                "MemoryDomain", "MemoryUtilities", "MemoryWire", "MemoryPosix", "MemoryMetrics", "CLibUV", "CSystemd",
                "CMicroHTTPD",
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The Swift client library (tests, memoryctl, memory-bench).
        .target(name: "MemoryClient", dependencies: ["MemoryDomain", "MemoryUtilities", "MemoryWire", "MemoryPosix"]),

        .executableTarget(
            name: "memoryd",
            dependencies: [
                "MemoryServer", "MemoryDomain", "MemoryUtilities", "MemoryBackends",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "memoryctl",
            dependencies: [
                "MemoryClient", "MemoryDomain", "MemoryUtilities", "MemoryPosix",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "memory-bench",
            dependencies: [
                "MemoryClient", "MemoryDomain", "MemoryUtilities", "MemoryWire", "MemoryPosix", "MemorySQLite",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Load generator for reliability tests (scripts/load-test, LoadTests).
        .executableTarget(
            name: "memory-load",
            dependencies: [
                "MemoryClient", "MemoryDomain", "MemoryUtilities", "MemoryWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .target(
            name: "MemoryTestSupport",
            dependencies: ["MemoryClient", "MemoryDomain", "MemoryUtilities", "MemoryPosix"],
            path: "Tests/MemoryTestSupport"),
        .testTarget(name: "MemoryUtilitiesTests", dependencies: ["MemoryUtilities"]),
        .testTarget(name: "MemoryMetricsTests", dependencies: ["MemoryMetrics"]),
        .testTarget(name: "MemoryDomainTests", dependencies: ["MemoryDomain", "MemoryUtilities"]),
        .testTarget(name: "MemoryBackendsTests", dependencies: ["MemoryBackends", "MemoryDomain"]),
        .testTarget(name: "MemoryServerTests", dependencies: ["MemoryServer", "MemoryUtilities"]),
        .testTarget(name: "MemoryWireTests", dependencies: ["MemoryWire", "MemoryDomain", "MemoryUtilities"]),
        .testTarget(
            name: "MemorySQLiteTests",
            dependencies: [
                "MemorySQLite", "MemoryDomain", "MemoryUtilities", "MemoryMetrics",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "MemoryFirestoreTests",
            dependencies: [
                "MemoryFirestore", "MemoryDomain", "MemoryUtilities", "MemoryTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "MemoryctlTests",
            dependencies: ["MemoryTestSupport", "MemoryClient", "MemoryDomain", "MemoryUtilities", "MemoryBackends"]),
        // The documents' code blocks, run as a reader would (docs/architecture.md, "Docs that run").
        .testTarget(name: "DocsTests", dependencies: ["MemoryTestSupport"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["MemoryTestSupport", "MemoryClient", "MemoryDomain", "MemoryUtilities", "MemoryWire"]),
    ]
)
