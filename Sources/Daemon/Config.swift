import Basics
import Foundation
import Policy
import TOMLKit

/// Where qcode keeps its runtime files (XDG conventions): the defaults of the
/// path settings, and the folders `qcode doctor` checks.
public enum DaemonPaths {
    public static var socketDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        if let runtime = env["XDG_RUNTIME_DIR"], !runtime.isEmpty { return URL(fileURLWithPath: runtime).appendingPathComponent("qcode") }
        return URL(fileURLWithPath: "/tmp/qcode-\(getuid())")
    }
    public static var configDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        let dir = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".config")
        return dir.appendingPathComponent("qcode")
    }
    public static var configFile: URL { configDirectory.appendingPathComponent("config.toml") }
}

/// qcode's settings. The initial values below are the defaults — the only
/// place they are written; `ConfigKey` is the table that says how each one is
/// named, read and checked.
public struct Configuration: Sendable, Hashable {
    public var socket = DaemonPaths.socketDirectory.appendingPathComponent("qcode.sock").path
    /// LLM server base URL; empty: the embedded llama-server.
    public var endpoint = ""
    public var api = APIFlavor.openai
    public var modelName = ""
    public var llmTimeout = 600.0
    /// The 1.5B by default: it lifts every method far more than any planner
    /// setting does (BENCHMARKS.md); `0.5b` is the small, fast one.
    public var model = EmbeddedModel.large
    /// A GGUF file; empty: the bootstrap's file for `model`.
    public var modelPath = ""
    public var llamaServer = QCodeCache.serverBinary.path
    public var slots = 8
    public var threads = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 4))
    public var maxConcurrentSolves = 2
    public var maxQueuedSolves = 16
    public var logFile = QCodeCache.logs.appendingPathComponent("daemon.log").path

    public init() {}

    public var endpointURL: URL? { endpoint.isEmpty ? nil : URL(string: endpoint) }

    /// The embedded model's file: `model_path`, else the bootstrap's file for `model`.
    public var modelFile: URL { modelPath.isEmpty ? model.defaultPath : URL(fileURLWithPath: modelPath) }

    /// What the LLM is, for status lines and benchmark reports.
    public var llmDescription: String {
        if let url = endpointURL { return "endpoint \(url.absoluteString)" + (modelName.isEmpty ? "" : " (\(modelName))") }
        return modelPath.isEmpty ? "embedded \(model.displayName)" : "embedded \(modelPath)"
    }
}

/// Where a value came from, highest precedence first.
public enum ConfigSource: Sendable, Hashable, CustomStringConvertible {
    case flag(String)
    case environment(String)
    case file(String)
    case defaultValue

    public var description: String {
        switch self {
        case .flag(let f): return "flag \(f)"
        case .environment(let v): return "env \(v)"
        case .file(let path): return path
        case .defaultValue: return "default"
        }
    }
}

public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A value a setting can hold, as text (flags, environment) and as TOML.
protocol ConfigValue: Sendable, Hashable {
    static var expected: String { get }
    init?(configText: String)
    init?(toml: any TOMLValueConvertible)
    var configText: String { get }
}

extension String: ConfigValue {
    static var expected: String { "a string" }
    init?(configText: String) { self = configText }
    init?(toml: any TOMLValueConvertible) { guard let s = toml.string else { return nil }; self = s }
    var configText: String { self }
}
extension Int: ConfigValue {
    static var expected: String { "a whole number" }
    init?(configText: String) { self.init(configText.trimmingCharacters(in: .whitespaces)) }
    init?(toml: any TOMLValueConvertible) { guard toml.type == .int, let i = toml.int else { return nil }; self = i }
    var configText: String { String(self) }
}
extension Double: ConfigValue {
    static var expected: String { "a number" }
    init?(configText: String) { self.init(configText.trimmingCharacters(in: .whitespaces)) }
    init?(toml: any TOMLValueConvertible) {
        switch toml.type {
        case .double: guard let d = toml.double else { return nil }; self = d
        case .int: guard let i = toml.int else { return nil }; self = Double(i)
        default: return nil
        }
    }
    var configText: String { String(self) }
}
extension ConfigValue where Self: RawRepresentable & CaseIterable, RawValue == String {
    static var expected: String { "one of " + allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ") }
    init?(configText: String) { self.init(rawValue: configText) }
    init?(toml: any TOMLValueConvertible) { guard let s = toml.string else { return nil }; self.init(rawValue: s) }
    var configText: String { rawValue }
}
extension APIFlavor: ConfigValue {}
extension EmbeddedModel: ConfigValue {}

/// The table of settings: each key's name (the TOML key; `QCODE_` + its
/// capitals in the environment; `--` + dashes as a flag), its field, its help
/// and its check. The switch makes a key without an entry a compile error.
public enum ConfigKey: String, CaseIterable, Sendable {
    case socket, endpoint, api, modelName = "model_name", llmTimeout = "llm_timeout", model, modelPath = "model_path"
    case llamaServer = "llama_server", slots, threads, maxConcurrentSolves = "max_concurrent_solves"
    case maxQueuedSolves = "max_queued_solves", logFile = "log_file"

    public var environment: String { "QCODE_" + rawValue.uppercased() }
    public var flag: String { "--" + rawValue.replacingOccurrences(of: "_", with: "-") }

    struct Spec: Sendable {
        let help: String
        let expected: String
        let read: @Sendable (inout Configuration, String) -> String?
        let readTOML: @Sendable (inout Configuration, any TOMLValueConvertible) -> String?
        let text: @Sendable (Configuration) -> String

        /// `check` answers nil for a good value, else what is wrong with it.
        init<V: ConfigValue>(_ path: WritableKeyPath<Configuration, V> & Sendable, _ help: String,
                             check: @escaping @Sendable (V) -> String? = { _ in nil }) {
            self.help = help
            expected = V.expected
            read = { config, text in
                guard let v = V(configText: text) else { return "must be \(V.expected), not '\(text)'" }
                if let problem = check(v) { return problem }
                config[keyPath: path] = v
                return nil
            }
            readTOML = { config, toml in
                guard let v = V(toml: toml) else { return "must be \(V.expected), not \(toml.debugDescription)" }
                if let problem = check(v) { return problem }
                config[keyPath: path] = v
                return nil
            }
            text = { $0[keyPath: path].configText }
        }
    }

    var spec: Spec {
        switch self {
        case .socket: return Spec(\.socket, "Unix socket the daemon listens on", check: { $0.isEmpty ? "must not be empty" : nil })
        case .endpoint:
            return Spec(\.endpoint, "LLM server base URL; empty: the embedded llama-server", check: { s in
                s.isEmpty || URL(string: s)?.scheme != nil ? nil : "must be a URL such as http://127.0.0.1:8080" })
        case .api: return Spec(\.api, "wire protocol of the endpoint: llama (native /completion) or openai (/v1/completions)")
        case .modelName: return Spec(\.modelName, "model name sent to an OpenAI-compatible endpoint")
        case .llmTimeout: return Spec(\.llmTimeout, "seconds to wait for one LLM call", check: Self.positive)
        case .model: return Spec(\.model, "the embedded model scripts/bootstrap fetched: 0.5b or 1.5b")
        case .modelPath: return Spec(\.modelPath, "a GGUF file for the embedded server, instead of `model`")
        case .llamaServer: return Spec(\.llamaServer, "the llama-server binary the embedded server runs")
        case .slots: return Spec(\.slots, "embedded server: parallel slots, the ceiling on -k", check: Self.atLeast(1))
        case .threads: return Spec(\.threads, "embedded server: CPU threads", check: Self.atLeast(1))
        case .maxConcurrentSolves: return Spec(\.maxConcurrentSolves, "solves the daemon runs at once", check: Self.atLeast(1))
        case .maxQueuedSolves:
            return Spec(\.maxQueuedSolves, "solves that may wait; past it a solve gets the busy error", check: Self.atLeast(0))
        case .logFile: return Spec(\.logFile, "where a background daemon logs")
        }
    }

    public var help: String { spec.help }

    /// What is wrong with `text` as this key's value (as a flag or a variable
    /// would give it), or nil when it is good: for settings that arrive from
    /// elsewhere (an editor's) and must be refused with the same words.
    public func problem(with text: String) -> String? {
        var scratch = Configuration()
        return spec.read(&scratch, text)
    }

    static func atLeast(_ min: Int) -> @Sendable (Int) -> String? { { $0 >= min ? nil : "must be at least \(min)" } }
    static func positive(_ x: Double) -> String? { x > 0 && x.isFinite ? nil : "must be a positive number" }

    /// `QCODE_*` variables that are not settings: read by the bootstrap and the
    /// jail itself as well, so they stay plain environment variables
    /// (`QCODE_JAIL_CGROUP`: a delegated cgroup for the jails' memory, sandbox/README.md;
    /// `QCODE_JAIL_POOL=off`: no warm jails, every program judged cold).
    public static let processVariables: Set<String> = ["QCODE_CACHE", "QCODE_JAIL", "QCODE_LLAMA", "QCODE_JAIL_CGROUP",
                                                       "QCODE_JAIL_POOL"]
}

extension Configuration {
    /// A configuration and where each value came from.
    public struct Resolved: Sendable {
        public var values: Configuration
        public var sources: [ConfigKey: ConfigSource]
        /// The file consulted (whether or not it exists).
        public var file: String

        /// `qcode config`: one line per key, `key = value  # source`.
        public var rendered: String {
            var lines = ["# qcode configuration: flags > QCODE_* environment > \(file) > defaults"]
            for key in ConfigKey.allCases {
                lines.append("\(key.rawValue) = \(Self.quote(key.spec.text(values)))  # \(sources[key] ?? .defaultValue)")
            }
            return lines.joined(separator: "\n")
        }

        static func quote(_ s: String) -> String {
            if Double(s) != nil || s == "true" || s == "false" { return s }
            return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
    }

    /// Resolves every key: flags > `QCODE_*` environment > `config.toml` >
    /// defaults. A misspelt key in the file or a misspelt `QCODE_` variable is
    /// an error that names it and where it was, never silently ignored.
    public static func resolve(flags: [ConfigKey: String] = [:],
                               environment: [String: String] = ProcessInfo.processInfo.environment,
                               file: URL? = DaemonPaths.configFile) throws(ConfigError) -> Resolved {
        var config = Configuration()
        var sources: [ConfigKey: ConfigSource] = [:]
        let known = Dictionary(uniqueKeysWithValues: ConfigKey.allCases.map { ($0.rawValue, $0) })
        let names = ConfigKey.allCases.map(\.rawValue).joined(separator: ", ")

        if let file, let text = try? String(contentsOf: file, encoding: .utf8) {
            let table: TOMLTable
            do { table = try TOMLTable(string: text) } catch let e as TOMLParseError {
                throw ConfigError("\(file.path): line \(e.source.begin.line), column \(e.source.begin.column): \(e.description)")
            } catch {
                throw ConfigError("\(file.path): \(error)")
            }
            // `[section]` headers only group: their keys are read as if at the top.
            var entries: [(String, any TOMLValueConvertible)] = []
            for key in table.keys {
                guard let value = table[key] else { continue }
                if let section = value.table {
                    for inner in section.keys { if let v = section[inner] { entries.append((inner, v)) } }
                } else {
                    entries.append((key, value))
                }
            }
            for (name, value) in entries {
                guard let key = known[name] else {
                    throw ConfigError("\(file.path): unknown key '\(name)'; known keys: \(names)")
                }
                if let problem = key.spec.readTOML(&config, value) {
                    throw ConfigError("\(file.path): \(name) \(problem)")
                }
                sources[key] = .file(file.path)
            }
        }
        let byVariable = Dictionary(uniqueKeysWithValues: ConfigKey.allCases.map { ($0.environment, $0) })
        for (variable, value) in environment.sorted(by: { $0.key < $1.key }) where variable.hasPrefix("QCODE_") {
            guard let key = byVariable[variable] else {
                if ConfigKey.processVariables.contains(variable) { continue }
                throw ConfigError("unknown environment variable \(variable); qcode reads "
                    + ConfigKey.allCases.map(\.environment).joined(separator: ", ") + " (and "
                    + ConfigKey.processVariables.sorted().joined(separator: ", ") + "): unset it or fix its name")
            }
            if let problem = key.spec.read(&config, value) { throw ConfigError("\(variable) \(problem)") }
            sources[key] = .environment(variable)
        }
        for (key, value) in flags.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            if let problem = key.spec.read(&config, value) { throw ConfigError("\(key.flag) \(problem)") }
            sources[key] = .flag(key.flag)
        }
        return Resolved(values: config, sources: sources, file: file?.path ?? "(no file)")
    }
}
