import Foundation
import Policy

/// Where qcode keeps its runtime files (XDG conventions). Mirrors `Paths` in
/// the CLI, which `doctor` uses; the daemon needs them without the CLI.
public enum DaemonPaths {
    public static var socketDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        if let runtime = env["XDG_RUNTIME_DIR"], !runtime.isEmpty { return URL(fileURLWithPath: runtime).appendingPathComponent("qcode") }
        return URL(fileURLWithPath: "/tmp/qcode-\(getuid())")
    }
    public static var defaultSocket: URL { socketDirectory.appendingPathComponent("qcode.sock") }
    public static var configFile: URL {
        let env = ProcessInfo.processInfo.environment
        let dir = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".config")
        return dir.appendingPathComponent("qcode/config.toml")
    }
    public static var logFile: URL { QCodeCache.root.appendingPathComponent("logs/daemon.log") }
}

/// Where a configuration value came from, highest precedence first.
public enum ConfigSource: Sendable, Hashable, CustomStringConvertible {
    case flag(String)
    case environment(String)
    case file(String, line: Int)
    case defaultValue

    public var description: String {
        switch self {
        case .flag(let f): return "flag --\(f)"
        case .environment(let v): return "env \(v)"
        case .file(let path, let line): return "\(path):\(line)"
        case .defaultValue: return "default"
        }
    }
}

public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The daemon's settings: one table of keys, each settable in
/// `$XDG_CONFIG_HOME/qcode/config.toml`, as `QCODE_<KEY>` and as `--<key>`,
/// with flags > environment > file > defaults.
public struct DaemonConfig: Sendable {
    public struct Key: Sendable {
        public let name: String
        public let help: String
        let defaultValue: @Sendable () -> String
        let validate: @Sendable (String) -> String?
        public var env: String { "QCODE_" + name.uppercased() }
        public var flag: String { name.replacingOccurrences(of: "_", with: "-") }
    }

    static func int(_ min: Int) -> @Sendable (String) -> String? {
        { Int($0).map { $0 >= min ? nil : "must be at least \(min)" } ?? "must be a whole number" }
    }
    static func positive(_ s: String) -> String? {
        Double(s).map { $0 > 0 ? nil : "must be positive" } ?? "must be a number"
    }

    public static let keys: [Key] = [
        Key(name: "socket", help: "Unix socket the daemon listens on", defaultValue: { DaemonPaths.defaultSocket.path }, validate: { $0.isEmpty ? "must not be empty" : nil }),
        Key(name: "endpoint", help: "LLM server base URL; empty: the embedded llama-server", defaultValue: { "" }, validate: { s in
            s.isEmpty || URL(string: s)?.scheme != nil ? nil : "must be a URL such as http://127.0.0.1:8080" }),
        Key(name: "api", help: "wire protocol of endpoint: llama or openai", defaultValue: { "openai" }, validate: { APIFlavor(rawValue: $0) == nil ? "must be llama or openai" : nil }),
        Key(name: "model_name", help: "model name sent to an OpenAI-compatible endpoint", defaultValue: { "" }, validate: { _ in nil }),
        Key(name: "llm_timeout", help: "seconds to wait for one LLM call", defaultValue: { "600" }, validate: positive),
        Key(name: "slots", help: "embedded server: parallel slots", defaultValue: { "8" }, validate: int(1)),
        Key(name: "threads", help: "embedded server: CPU threads", defaultValue: { String(max(1, min(ProcessInfo.processInfo.activeProcessorCount, 4))) }, validate: int(1)),
        Key(name: "max_concurrent_solves", help: "solves the daemon runs at once", defaultValue: { "2" }, validate: int(1)),
        Key(name: "max_queued_solves", help: "solves that may wait; past it a solve gets the busy error", defaultValue: { "16" }, validate: int(0)),
        Key(name: "log_file", help: "where a background daemon logs", defaultValue: { DaemonPaths.logFile.path }, validate: { _ in nil }),
    ]

    public private(set) var values: [String: String] = [:]
    public private(set) var sources: [String: ConfigSource] = [:]
    public let fileConsulted: String

    /// Resolves every key. `flags` maps key names (snake_case) to values given on the command line.
    public static func resolve(flags: [String: String] = [:],
                               environment: [String: String] = ProcessInfo.processInfo.environment,
                               file: URL? = DaemonPaths.configFile) throws -> DaemonConfig {
        var fileValues: [String: (String, Int)] = [:]
        if let file, let text = try? String(contentsOf: file, encoding: .utf8) {
            fileValues = try TOMLSubset.parse(text, path: file.path)
            for name in fileValues.keys where !keys.contains(where: { $0.name == name }) {
                throw ConfigError("\(file.path):\(fileValues[name]!.1): unknown key '\(name)'; known keys: \(keys.map(\.name).joined(separator: ", "))")
            }
        }
        var config = DaemonConfig(fileConsulted: file?.path ?? "(none)")
        for key in keys {
            let (value, source): (String, ConfigSource)
            if let v = flags[key.name] { (value, source) = (v, .flag(key.flag)) }
            else if let v = environment[key.env] { (value, source) = (v, .environment(key.env)) }
            else if let (v, line) = fileValues[key.name] { (value, source) = (v, .file(file!.path, line: line)) }
            else { (value, source) = (key.defaultValue(), .defaultValue) }
            if let problem = key.validate(value) {
                throw ConfigError("\(key.name) = '\(value)' (from \(source)) \(problem)")
            }
            config.values[key.name] = value
            config.sources[key.name] = source
        }
        return config
    }

    public subscript(_ name: String) -> String { values[name] ?? "" }
    public func int(_ name: String) -> Int { Int(self[name]) ?? 0 }
    public func double(_ name: String) -> Double { Double(self[name]) ?? 0 }

    public var socketPath: String { self["socket"] }
    public var endpoint: URL? { self["endpoint"].isEmpty ? nil : URL(string: self["endpoint"]) }

    /// `qcode config`: one line per key, `key = value  # source`.
    public var rendered: String {
        var lines = ["# qcode configuration: flags > QCODE_* environment > \(fileConsulted) > defaults"]
        for key in Self.keys {
            lines.append("\(key.name) = \(TOMLSubset.quote(self[key.name]))  # \(sources[key.name]!)")
        }
        return lines.joined(separator: "\n")
    }
}

/// The part of TOML a flat settings file needs: `key = value` with strings,
/// numbers and booleans, comments, and `[table]` headers (keys are flat, so
/// headers only group).
enum TOMLSubset {
    static func parse(_ text: String, path: String) throws -> [String: (String, Int)] {
        var out: [String: (String, Int)] = [:]
        for (i, raw) in text.components(separatedBy: "\n").enumerated() {
            let lineNo = i + 1
            let line = stripComment(raw).trimmingCharacters(in: .whitespaces)
            if line.isEmpty || (line.hasPrefix("[") && line.hasSuffix("]")) { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigError("\(path):\(lineNo): expected 'key = value', found '\(line)'")
            }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let q = value.first, q == "\"" || q == "'", value.last == q {
                value = String(value.dropFirst().dropLast())
                if q == "\"" {
                    value = value.replacingOccurrences(of: "\\\\", with: "\u{0}").replacingOccurrences(of: "\\\"", with: "\"")
                        .replacingOccurrences(of: "\\n", with: "\n").replacingOccurrences(of: "\u{0}", with: "\\")
                }
            } else if value.isEmpty {
                throw ConfigError("\(path):\(lineNo): '\(key)' has no value")
            }
            out[key] = (value, lineNo)
        }
        return out
    }

    static func stripComment(_ line: String) -> String {
        var inString: Character?
        for (offset, c) in line.enumerated() {
            if let q = inString { if c == q { inString = nil } }
            else if c == "\"" || c == "'" { inString = c }
            else if c == "#" { return String(line.prefix(offset)) }
        }
        return line
    }

    static func quote(_ s: String) -> String {
        if Double(s) != nil || s == "true" || s == "false" { return s }
        return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
