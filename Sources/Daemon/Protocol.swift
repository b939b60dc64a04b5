import CodeDomain
import QVM
import Foundation
import PythonSyntax
import QStar
import RPC
import Sandbox

/// The shapes of qcode's methods on the wire (snake_case keys; see
/// docs/protocol.md). Kept apart from the server so clients can share them.
public enum Method {
    public static let initialize = "initialize"
    public static let initialized = "initialized"
    public static let shutdown = "shutdown"
    public static let exit = "exit"
    public static let cancelRequest = "$/cancelRequest"
    public static let progress = "$/progress"
    public static let solve = "qcode/solve"
    public static let check = "qcode/check"
    public static let test = "qcode/test"
    public static let status = "qcode/status"
    public static let stop = "qcode/stop"
    public static let all = [initialize, shutdown, exit, cancelRequest, solve, check, test, status, stop]
}

public let qcodeVersion = "0.1.0"

public struct InitializeParams: Codable, Sendable {
    public struct ClientInfo: Codable, Sendable {
        public var name: String
        public var version: String?
    }
    public var processId: Int?
    public var clientInfo: ClientInfo?
    public init(processId: Int? = nil, clientInfo: ClientInfo? = nil) {
        self.processId = processId
        self.clientInfo = clientInfo
    }
}

public struct InitializeResult: Codable, Sendable {
    public struct ServerInfo: Codable, Sendable { public var name: String; public var version: String }
    public struct Capabilities: Codable, Sendable {
        public var methods: [String]
        public var solveMethods: [String]
        public var valueModels: [String]
        public var progress: Bool
        public var cancellation: Bool
        public var maxFrameBytes: Int
    }
    public var serverInfo: ServerInfo
    public var capabilities: Capabilities
}

/// A task given inline; the same fields as a qcode task file, with inline tests.
public struct TaskSpec: Codable, Sendable {
    public var id: String?
    public var text: String
    public var tests: [String]
    public var setup: String?
    public var entryPoint: String?

    public init(_ task: CodeTask) {
        id = task.id
        text = task.text
        tests = task.tests
        setup = task.setup
        entryPoint = task.entryPoint
    }

    var task: CodeTask {
        CodeTask(id: id ?? "task", text: text, tests: tests, setup: setup ?? "", entryPoint: entryPoint)
    }
}

/// Search settings; every field optional, defaults as `qcode solve`'s flags.
public struct SolveSettings: Codable, Sendable, Hashable {
    public var k: Int?
    public var lambda: Double?
    public var agg: String?
    public var value: String?
    public var budgetTokens: Int?
    public var budgetExpansions: Int?
    public var budgetSeconds: Double?
    public var samples: Int?
    public var temperature: Double?
    public var seed: UInt64?
    public var timeout: Double?
    public init() {}
}

public struct SolveParams: Codable, Sendable {
    public var task: TaskSpec?
    /// An absolute path to a task file on the daemon's machine, instead of `task`.
    public var taskFile: String?
    public var method: String?
    public var options: SolveSettings?
    /// LSP's work-done token: `$/progress` notifications carry it. Default: the request id.
    public var workDoneToken: JSONValue?

    public init(task: TaskSpec? = nil, taskFile: String? = nil, method: String? = nil, options: SolveSettings? = nil,
                workDoneToken: JSONValue? = nil) {
        self.task = task
        self.taskFile = taskFile
        self.method = method
        self.options = options
        self.workDoneToken = workDoneToken
    }

    func resolved() throws -> (CodeTask, SolveOptions, CodeValueModel, timeout: Double) {
        let task: CodeTask
        if let spec = self.task {
            guard !spec.tests.isEmpty else { throw ResponseError.invalidParams("task.tests is empty: give at least one assert") }
            task = spec.task
        } else if let file = taskFile {
            guard file.hasPrefix("/") else { throw ResponseError.invalidParams("task_file must be an absolute path, not '\(file)'") }
            do { task = try TaskLoader.taskFile(URL(fileURLWithPath: file)) } catch {
                throw ResponseError.invalidParams("\(error)")
            }
        } else {
            throw ResponseError.invalidParams("give 'task' ({text, tests, ...}) or 'task_file' (an absolute path)")
        }
        let s = self.options ?? SolveSettings()
        var o = SolveOptions()
        if let m = method {
            guard let parsed = SolveMethod(rawValue: m) else {
                throw ResponseError.invalidParams("method must be qstar, greedy or best-of-n, not '\(m)'")
            }
            o.method = parsed
        }
        o.k = s.k ?? 4
        guard o.k >= 1 else { throw ResponseError.invalidParams("options.k must be at least 1") }
        o.lambda = s.lambda ?? 1
        if let a = s.agg {
            guard let agg = Aggregation(rawValue: a) else { throw ResponseError.invalidParams("options.agg must be min, max, sum or last, not '\(a)'") }
            o.aggregation = agg
        }
        let tokens = s.budgetTokens ?? 1500
        guard tokens > 0 else { throw ResponseError.invalidParams("options.budget_tokens must be positive") }
        o.budget = Budget(maxExpansions: s.budgetExpansions, maxGeneratedTokens: tokens, maxSeconds: s.budgetSeconds)
        o.seed = s.seed ?? 0
        o.samples = s.samples ?? 8
        o.temperature = s.temperature ?? 0.8
        let value: CodeValueModel
        do { value = try CodeValueModel.named(s.value ?? "logprob") } catch {
            throw ResponseError.invalidParams("options.value: \(error)")
        }
        let timeout = s.timeout ?? 10
        guard timeout > 0, timeout <= 3600 else { throw ResponseError.invalidParams("options.timeout must be between 0 and 3600 seconds") }
        return (task, o, value, timeout)
    }
}

public struct SolveResult: Codable, Sendable {
    public var taskId: String
    public var method: String
    public var value: String
    public var program: String?
    public var passed: Int
    public var total: Int
    public var outcome: String
    /// The test outcome of the final program (passed, failed, timeout …); nil without a program.
    public var verdict: String?
    public var asserts: [AssertResult]
    public var statistics: SearchStatistics
}

/// `$/progress` value during a solve.
public struct SolveProgress: Codable, Sendable {
    public var kind = "report"
    public var expansions: Int
    public var bestF: Double
    public var generatedTokens: Int
    public var bestPassed: Int?
    /// The verified program with the most passing asserts so far.
    public var bestProgram: String?
}

public struct CheckParams: Codable, Sendable {
    public var source: String
    public var entryPoint: String?
    /// Test source (assert lines); its first call names the entry point and its arity.
    public var tests: String?
    public init(source: String, entryPoint: String? = nil, tests: String? = nil) {
        self.source = source
        self.entryPoint = entryPoint
        self.tests = tests
    }
}

/// `qcode check --json`'s shape; null members are sent, so consumers need not test for keys.
public struct CheckResult: Codable, Sendable {
    public var verdict: SyntaxVerdict
    public var errors: [SyntaxIssue]
    public var entryPoint: String?
    public var entryPointDefined: Bool?
    public var entryPointArityMatches: Bool?
    public var indentDepth: Int
    public var lineCount: Int
    /// Arity the tests call the entry point with (for the human summary line).
    public var testArity: Int?

    enum CodingKeys: String, CodingKey {
        case verdict, errors, entryPoint, entryPointDefined, entryPointArityMatches, indentDepth, lineCount, testArity
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(errors, forKey: .errors)
        try c.encode(entryPoint, forKey: .entryPoint)
        try c.encode(entryPointDefined, forKey: .entryPointDefined)
        try c.encode(entryPointArityMatches, forKey: .entryPointArityMatches)
        try c.encode(indentDepth, forKey: .indentDepth)
        try c.encode(lineCount, forKey: .lineCount)
        try c.encode(testArity, forKey: .testArity)
    }

    public static func check(_ p: CheckParams) throws -> CheckResult {
        let parser: PythonParser
        do { parser = try PythonParser() } catch { throw ResponseError.internalError("\(error)") }
        var entry: EntryPoint?
        var name = p.entryPoint
        if let tests = p.tests {
            guard p.entryPoint == nil else { throw ResponseError.invalidParams("give either entry_point or tests, not both") }
            entry = tests.split(whereSeparator: \.isNewline).lazy.compactMap { CodeDomain.entryPoint(fromTest: String($0)) }.first
            guard let entry else {
                throw ResponseError.invalidParams("no function call found in the tests: expected lines like `assert f(1, 2) == 3`")
            }
            name = entry.name
        }
        let program = parser.parse(p.source)
        let report = program.report
        let defined: Bool? = name.map { n in report.functions.contains { $0.name == n } }
        return CheckResult(verdict: report.verdict, errors: report.issues, entryPoint: name, entryPointDefined: defined,
                           entryPointArityMatches: entry.map { codeFacts(program, entryPoint: $0).entryPointArityMatches },
                           indentDepth: report.indentDepth, lineCount: report.lineCount, testArity: entry?.arity)
    }
}

public struct TestParams: Codable, Sendable {
    public var program: String
    public var tests: String
    public var setup: String?
    public var timeout: Double?
    public init(program: String, tests: String, setup: String? = nil, timeout: Double? = nil) {
        self.program = program
        self.tests = tests
        self.setup = setup
        self.timeout = timeout
    }
}

public struct StatusResult: Codable, Sendable {
    public struct Tokens: Codable, Sendable {
        public var llmCalls: Int
        public var promptTokens: Int
        public var cachedPromptTokens: Int
        public var generatedTokens: Int
    }
    public struct Caches: Codable, Sendable {
        public var jailRuns: Int
        public var jailCacheHits: Int
        public var jailHitRate: Double
        public var llmPromptCacheShare: Double
    }
    public var version: String
    public var pid: Int
    public var socket: String?
    public var uptimeSeconds: Double
    public var requestsServed: Int
    public var solvesCompleted: Int
    public var connections: Int
    public var solvesRunning: Int
    public var solvesWaiting: Int
    public var tokens: Tokens
    public var llm: Components.Health
    public var caches: Caches
}
