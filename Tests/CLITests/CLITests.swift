import Basics
import CodeDomain
import Foundation
import Testing
import TestSupport
@testable import qcode

/// Runs the built `qcode` as a user would, with a private config and socket.
func qcode(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> (status: Int32, output: String) {
    try await run(qcodeBinary, arguments, environment: try qcodeEnvironment(extra), currentDirectory: repoRoot)
}

let qcodeBinary = buildProducts.appendingPathComponent("qcode").path

/// The environment `qcode(_:)` runs in: no QCODE_ settings of the caller's, a private config folder.
func qcodeEnvironment(_ extra: [String: String] = [:]) throws -> [String: String] {
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("QCODE_") || $0.key == "QCODE_CACHE" }
    env["XDG_CONFIG_HOME"] = try tempDirectory("qcode-cli-config").path
    env["QCODE_JAIL"] = buildProducts.appendingPathComponent("qcode-jail").path
    for (k, v) in extra { env[k] = v }
    return env
}

@Suite struct SolveFlagTests {
    /// Every field of `SolveOptions` has a flag, and the flags reach the same value the daemon decodes.
    @Test func everyOptionHasAFlagThatSetsIt() throws {
        let o = SolveOptions.everyFieldChanged
        /// A wire value spelled as a flag's argument.
        enum Scalar: Decodable, CustomStringConvertible {
            case bool(Bool), int(Int), double(Double), string(String), list([String])
            init(from decoder: any Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let l = try? c.decode([String].self) { self = .list(l) }
                else if let b = try? c.decode(Bool.self) { self = .bool(b) }
                else if let i = try? c.decode(Int.self) { self = .int(i) }
                else if let d = try? c.decode(Double.self) { self = .double(d) }
                else { self = .string(try c.decode(String.self)) }
            }
            var description: String {
                switch self {
                case .bool(let b): return String(b)
                case .int(let i): return String(i)
                case .double(let d): return String(d)
                case .string(let s): return s
                case .list(let l): return l.joined(separator: ",")
                }
            }
        }
        let wire = try JSONDecoder().decode([String: Scalar].self, from: JSONCoding.encoder.encode(o))
        var arguments: [String] = []
        for field in SolveOptions.Field.allCases {
            arguments += [SolveFlags.flag(for: field.wireName), "\(wire[field.wireName]!)"]
        }
        #expect(try SolveFlags.parse(arguments).options() == o)
        #expect(try SolveFlags.parse([]).options() == SolveOptions())
    }

    @Test func anOutOfRangeFlagIsRefusedByItsName() throws {
        #expect { try SolveFlags.parse(["-k", "0"]).options() } throws: { "\($0)".contains("-k must be between 1 and 64") }
        #expect { try SolveFlags.parse(["--budget-tokens", "0"]).options() } throws: { "\($0)".contains("--budget-tokens must be positive") }
        #expect { try SolveFlags.parse(["--method", "mcts"]).options() } throws: { "\($0)".contains("--method must be one of qstar") }
        #expect { try SolveFlags.parse(["--framings", "instruct,exampels"]).options() } throws: {
            "\($0)".contains("--framings takes instruct, examples, not 'exampels'")
        }
        #expect { try SolveFlags.parse(["--framings", "examples,examples"]).options() } throws: { "\($0)".contains("--framings must name each") }
        // A flag that would have no effect is an error, not silently ignored.
        #expect { try SolveFlags.parse(["--step-tokens", "8"]).options() } throws: { "\($0)".contains("--continuations false") }
    }
}

@Suite(.serialized) struct ExecutableTests {
    static let task = repoRoot.appendingPathComponent("examples/palindrome/task.json").path

    @Test func aStepTokensFlagReachesTheSearchWithAndWithoutTheDaemon() async throws {
        let endpoint = try await FakeEndpoint(program: "def is_palindrome(s):\n    return s == s[::-1]\n")
        defer { endpoint.stop() }
        let socket = tempSocketPath()
        let common = ["solve", Self.task, "--endpoint", endpoint.url, "--api", "llama", "--step-tokens", "8",
                      "--continuations", "false", "--greedy-first", "false", "-k", "2", "--budget-expansions", "2", "--socket", socket]
        let here = try await qcode(common + ["--no-daemon"])
        #expect(here.status != 2, "\(here.output)")
        let inProcess = endpoint.maxTokens
        #expect(!inProcess.isEmpty && inProcess.allSatisfy { $0 == 8 }, "\(inProcess)")
        let there = try await qcode(common)
        #expect(there.status != 2, "\(there.output)")
        let viaDaemon = Array(endpoint.maxTokens.dropFirst(inProcess.count))
        #expect(!viaDaemon.isEmpty && viaDaemon.allSatisfy { $0 == 8 }, "\(viaDaemon)")
        _ = try await qcode(["stop", "--socket", socket])
    }

    @Test func exitStatusSaysWrongAnswerOrError() async throws {
        let endpoint = try await FakeEndpoint(program: "def is_palindrome(s):\n    return False\n")
        defer { endpoint.stop() }
        let wrong = try await qcode(["solve", Self.task, "--endpoint", endpoint.url, "--api", "llama", "--method", "greedy", "--no-daemon"])
        #expect(wrong.status == 1, "\(wrong.output)")
        #expect(wrong.output.contains("# FAIL"))
        let unreachable = try await qcode(["solve", Self.task, "--endpoint", "http://127.0.0.1:9", "--api", "llama",
                                           "--method", "greedy", "--no-daemon", "--llm-timeout", "5"])
        #expect(unreachable.status == 2, "\(unreachable.output)")
        #expect(unreachable.output.contains("cannot reach the LLM server"))
        let good = try await qcode(["solve", Self.task, "--endpoint", endpoint.url, "--api", "llama", "--method", "greedy",
                                    "--no-daemon", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(good.output.utf8)) as? [String: Any]
        #expect(json?["method"] as? String == "greedy")
    }

    @Test func aMisspeltSettingIsRefusedNamingIt() async throws {
        let env = try await qcode(["config"], environment: ["QCODE_SLOTZ": "2"])
        #expect(env.status == 64 && env.output.contains("QCODE_SLOTZ"), "\(env.output)")
        let dir = try tempDirectory("qcode-cli-config")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("qcode"), withIntermediateDirectories: true)
        try "slotz = 2\n".write(to: dir.appendingPathComponent("qcode/config.toml"), atomically: true, encoding: .utf8)
        let file = try await qcode(["config"], environment: ["XDG_CONFIG_HOME": dir.path])
        #expect(file.status == 64 && file.output.contains("unknown key 'slotz'") && file.output.contains("config.toml"), "\(file.output)")
        let shown = try await qcode(["config"], environment: ["QCODE_MODEL": "1.5b"])
        #expect(shown.output.contains("model = \"1.5b\"  # env QCODE_MODEL"), "\(shown.output)")
    }
}
