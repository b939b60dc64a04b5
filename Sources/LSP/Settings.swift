import CodeDomain
import Daemon
import Foundation
import RPC

/// What an editor sets for qcode (`initializationOptions`, `didChangeConfiguration`):
/// the same typed values the command line sets, one flat object of snake_case keys
/// (optionally under `qcode`):
///
///     {"method": "greedy", "budget_tokens": 800, "endpoint": "http://127.0.0.1:8080"}
///
/// Search keys are `SolveOptions`' fields (what `qcode solve` has flags for),
/// checked by the same `validate()`; the others are configuration keys (`qcode
/// config --help`), checked by the same table, and act like command-line flags:
/// above `QCODE_*` variables and config.toml.
public struct EditorSettings: Sendable, Hashable {
    public var options = SolveOptions()
    public var configuration: [ConfigKey: String] = [:]

    public init(options: SolveOptions = SolveOptions(), configuration: [ConfigKey: String] = [:]) {
        self.options = options
        self.configuration = configuration
    }

    /// Settings that shape the LLM: a daemon already running keeps its own.
    public static let llmKeys: Set<ConfigKey> = [.endpoint, .api, .modelName, .llmTimeout, .model, .modelPath, .llamaServer,
                                                 .slots, .threads]

    public struct Problem: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Every key checked; the first problem is thrown, naming the key.
    public static func parse(_ value: JSONValue?) throws(Problem) -> EditorSettings {
        var object: [String: JSONValue]
        switch value {
        case nil, .null?: return EditorSettings()
        case .object(let o)?:
            object = o
            if o.count == 1, case .object(let inner)? = o["qcode"] { object = inner }
        default:
            throw Problem(description: "qcode's settings must be an object of keys such as {\"method\": \"greedy\"}")
        }
        let optionKeys = Set(SolveOptions.Field.allCases.map(\.wireName))
        var options: [String: JSONValue] = [:]
        var settings = EditorSettings()
        for key in object.keys.sorted() {
            let v = object[key]!
            if optionKeys.contains(key) {
                options[key] = v
            } else if let configKey = ConfigKey(rawValue: key) {
                guard let text = try configText(v, key) else { continue }
                if let problem = configKey.problem(with: text) { throw Problem(description: "setting '\(key)' \(problem)") }
                settings.configuration[configKey] = text
            } else {
                let known = SolveOptions.Field.allCases.map(\.wireName) + ConfigKey.allCases.map(\.rawValue)
                throw Problem(description: "unknown setting '\(key)'; qcode's settings are: \(known.joined(separator: ", "))")
            }
        }
        do {
            settings.options = try decodeParams(.object(options), SolveOptions.self, "settings")
            try settings.options.validate()
        } catch let e as OptionError {
            throw Problem(description: "setting '\(e.field)': \(e.message)")
        } catch let e as ResponseError {
            throw Problem(description: e.message)
        } catch {
            throw Problem(description: "\(error)")
        }
        return settings
    }

    /// A configuration value as the text a flag would carry; nil (`null`) unsets it.
    private static func configText(_ v: JSONValue, _ key: String) throws(Problem) -> String? {
        switch v {
        case .null: return nil
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return String(b)
        case .array, .object: throw Problem(description: "setting '\(key)' must be a string or a number")
        }
    }

    /// The configuration a solve uses: these settings over `QCODE_*` variables,
    /// config.toml and the defaults, exactly as flags are.
    public func resolve(environment: [String: String], file: URL?) throws(ConfigError) -> Configuration {
        try Configuration.resolve(flags: configuration, environment: environment, file: file).values
    }
}
