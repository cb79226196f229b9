import Logging
import MemoryUtilities

/// What a storage backend tells the daemon about itself: its name, the configuration keys it owns, its
/// defaults and how to open it. The daemon, the configuration loader and the server know backends only
/// through these; adding a backend is a new target that declares one of these, plus one line in
/// `MemoryBackends.BackendCatalog`.
public struct BackendRegistration: Sendable {
    /// The name in `backend = "…"`, in logs and in health (`details.backend`).
    public var name: String
    /// Other names accepted for `backend` (the original system's `firestore_v2`, say).
    public var aliases: [String]
    /// One line for `memoryd --help` and the configuration reference.
    public var summary: String
    /// The keys this backend reads, each with its type, range and default. Their sections (`firestore.`,
    /// `circuit_breaker.`) belong to the backend; the loader accepts them whichever backend is chosen, so one
    /// file can carry the settings of several.
    public var keys: [ConfigKey]
    /// Standard environment variables read before the file (`GOOGLE_CLOUD_PROJECT` → `firestore.project_id`).
    public var standardEnvironment: [(variable: String, key: String)]
    /// Command-line flags of `memoryd` that set one of `keys` (`--project-id` → `firestore.project_id`).
    public var flags: [ConfigFlag]
    /// Worker threads (= backend connections) when `workers` is 0.
    public var defaultWorkers: @Sendable (DaemonConfig) -> Int
    /// Checks what the key types cannot (a required key, a combination); throws naming the key.
    public var validate: @Sendable (DaemonConfig) throws(ConfigError) -> Void
    /// Opens the backend for a validated configuration; makes no request yet where it can avoid it.
    public var open: @Sendable (DaemonConfig, Logger) throws -> StoreBackend
    /// `memoryd --check-config`'s look at what the values point to, changing nothing: errors for what the
    /// start would refuse (a data directory that cannot be created), warnings for what may come up later
    /// (a backend that does not answer yet).
    public var preflight: @Sendable (DaemonConfig, Logger) -> [ConfigFinding]
    /// Layouts of older systems this backend converts in place (`memoryd migrate --from v1`); the backend
    /// `open` returns then implements ``InPlaceMigrating``.
    public var legacyFormats: [String]

    public init(
        name: String, aliases: [String] = [], summary: String, keys: [ConfigKey] = [],
        standardEnvironment: [(variable: String, key: String)] = [], flags: [ConfigFlag] = [],
        defaultWorkers: @escaping @Sendable (DaemonConfig) -> Int,
        validate: @escaping @Sendable (DaemonConfig) throws(ConfigError) -> Void = { _ throws(ConfigError) in },
        open: @escaping @Sendable (DaemonConfig, Logger) throws -> StoreBackend,
        preflight: @escaping @Sendable (DaemonConfig, Logger) -> [ConfigFinding] = { _, _ in [] },
        legacyFormats: [String] = []
    ) {
        self.name = name
        self.aliases = aliases
        self.summary = summary
        self.keys = keys
        self.standardEnvironment = standardEnvironment
        self.flags = flags
        self.defaultWorkers = defaultWorkers
        self.validate = validate
        self.open = open
        self.preflight = preflight
        self.legacyFormats = legacyFormats
    }

    /// True when `backend = name` selects this backend.
    public func answers(to name: String) -> Bool { name == self.name || aliases.contains(name) }
}

/// A configuration key a backend owns: `firestore.batch_size`, an integer in 1...10000, default 400.
public struct ConfigKey: Sendable {
    public enum Kind: Sendable, Equatable {
        case string
        case integer(ClosedRange<Int>)
        case number(ClosedRange<Double>)
    }

    /// The dotted key as in the file's `[section]` + name.
    public var name: String
    public var kind: Kind
    public var defaultValue: ConfigValue
    /// One line for the configuration reference.
    public var help: String

    public init(_ name: String, _ kind: Kind, default defaultValue: ConfigValue, help: String) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
    }

    /// Converts a value from the file, the environment or a flag, or throws naming the key and the source.
    func parse(_ value: TOMLValue, source: String) throws(ConfigError) -> ConfigValue {
        switch kind {
        case .string: return .string(try ConfigParse.string(name, value, source))
        case .integer(let range): return .integer(try ConfigParse.integer(name, value, range, source))
        case .number(let range): return .number(try ConfigParse.number(name, value, range, source))
        }
    }
}

/// A value of a backend's key.
public enum ConfigValue: Sendable, Equatable, CustomStringConvertible {
    case string(String)
    case integer(Int)
    case number(Double)

    public var description: String {
        switch self {
        case .string(let s): s
        case .integer(let i): String(i)
        case .number(let d): String(d)
        }
    }
}

/// A `memoryd` flag that sets a backend's key: `--project-id ID` sets `firestore.project_id`.
public struct ConfigFlag: Sendable {
    /// Without the leading dashes: `project-id`.
    public var name: String
    public var key: String
    public var valueName: String
    public var help: String

    public init(_ name: String, key: String, valueName: String, help: String) {
        self.name = name
        self.key = key
        self.valueName = valueName
        self.help = help
    }
}
