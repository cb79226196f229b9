// swift-tools-version:6.0
import PackageDescription

// Layers, bottom to top (see README "Design notes"):
//   C shims (one target per C library) -> MemoryCore (pure Swift) -> wrappers (MemoryWire, event loop,
//   HTTP, sqlite) -> backends + server + client -> thin executables.
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
        .target(name: "CMemoryProto", cSettings: [.unsafeFlags(["-w"])], linkerSettings: [.linkedLibrary("protobuf-c")]),
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        .systemLibrary(name: "CSQLite3"),
        // The embedding index's SIMD inner loops (C vector extensions; plain -O2, no -march).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O2"])]),
        .systemLibrary(name: "CSystemd"),
        .systemLibrary(name: "CCrypto"),

        // Pure Swift: model, errors, validation, the store interface, frame codec, config.
        .target(name: "MemoryCore"),
        // protobuf-c <-> MemoryCore conversion; the only module touching generated structs.
        .target(name: "MemoryWire", dependencies: ["MemoryCore", "CMemoryProto"]),
        // Backends behind MemoryCore.StoreBackend.
        .target(name: "MemorySQLite", dependencies: ["MemoryCore", "CSQLite3", "CKernels", .product(name: "Logging", package: "swift-log")]),
        .target(name: "MemoryFirestore", dependencies: ["MemoryCore", "CCurl", "CCrypto", .product(name: "Logging", package: "swift-log")]),
        // The daemon: libuv loop, connections, worker pool, systemd integration.
        .target(name: "MemoryServer", dependencies: [
            "MemoryCore", "MemoryWire", "CLibUV", "CSystemd", .product(name: "Logging", package: "swift-log"),
        ]),
        // The Swift client library (tests, memoryctl, memory-bench).
        .target(name: "MemoryClient", dependencies: ["MemoryCore", "MemoryWire"]),

        .executableTarget(name: "memoryd", dependencies: [
            "MemoryServer", "MemorySQLite", "MemoryFirestore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "memoryctl", dependencies: [
            "MemoryClient", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "memory-bench", dependencies: [
            "MemoryClient", "MemoryCore", "MemoryWire", "MemorySQLite",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Load generator for reliability tests (scripts/load-test, LoadTests).
        .executableTarget(name: "memory-load", dependencies: [
            "MemoryClient", "MemoryCore", "MemoryWire", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .target(name: "MemoryTestSupport", dependencies: ["MemoryClient", "MemoryCore"], path: "Tests/MemoryTestSupport"),
        .testTarget(name: "MemoryCoreTests", dependencies: ["MemoryCore"]),
        .testTarget(name: "MemoryWireTests", dependencies: ["MemoryWire", "MemoryCore"]),
        .testTarget(name: "MemorySQLiteTests", dependencies: ["MemorySQLite", "MemoryCore", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "MemoryFirestoreTests", dependencies: ["MemoryFirestore", "MemoryCore", "MemoryTestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "MemoryctlTests", dependencies: ["MemoryTestSupport", "MemoryClient", "MemoryCore"]),
        .testTarget(name: "IntegrationTests", dependencies: ["MemoryTestSupport", "MemoryClient", "MemoryCore", "MemoryWire"]),
    ]
)
