import Basics
import CodeDomain
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

    enum CodingKeys: String, CodingKey, CaseIterable { case id, text, tests, setup, entryPoint }

    public init(from decoder: any Decoder) throws {
        try StrictDecoding.rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id)
        text = try c.decode(String.self, forKey: .text)
        tests = try c.decode([String].self, forKey: .tests)
        setup = try c.decodeIfPresent(String.self, forKey: .setup)
        entryPoint = try c.decodeIfPresent(String.self, forKey: .entryPoint)
    }

    var task: CodeTask {
        CodeTask(id: id ?? "task", text: text, tests: tests, setup: setup ?? "", entryPoint: entryPoint)
    }
}

/// `qcode/solve`: a task (inline or a file on the daemon's machine), or a function stub
/// in a module (`source` and/or `file`, and `function`), and the options — the same
/// `SolveOptions` the CLI builds from its flags.
public struct SolveParams: Codable, Sendable {
    public var task: TaskSpec?
    /// An absolute path to a task file on the daemon's machine, instead of `task`.
    public var taskFile: String?
    /// A stub task: the module's text (an editor's buffer, saved or not).
    public var source: String?
    /// A stub task: the module's absolute path. It names the module and locates its test
    /// files (`test_NAME.py`, `tests/test_NAME.py`); read only when `source` is absent.
    public var file: String?
    /// A stub task: the function whose body to write (`Class.method` for a method).
    public var function: String?
    /// A stub task: an absolute path to the test file to use instead of looking for one.
    public var testFile: String?
    public var options: SolveOptions?
    /// Send the explored tree back (for `--trace`).
    public var trace: Bool?
    /// LSP's work-done token: `$/progress` notifications carry it. Default: the request id.
    public var workDoneToken: JSONValue?

    public init(task: TaskSpec? = nil, taskFile: String? = nil, options: SolveOptions? = nil, trace: Bool? = nil,
                workDoneToken: JSONValue? = nil) {
        self.task = task
        self.taskFile = taskFile
        self.options = options
        self.trace = trace
        self.workDoneToken = workDoneToken
    }

    /// A stub task.
    public init(source: String?, file: String?, function: String, testFile: String? = nil, options: SolveOptions? = nil,
                trace: Bool? = nil, workDoneToken: JSONValue? = nil) {
        self.source = source
        self.file = file
        self.function = function
        self.testFile = testFile
        self.options = options
        self.trace = trace
        self.workDoneToken = workDoneToken
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case task, taskFile, source, file, function, testFile, options, trace, workDoneToken
    }

    public init(from decoder: any Decoder) throws {
        try StrictDecoding.rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        task = try c.decodeIfPresent(TaskSpec.self, forKey: .task)
        taskFile = try c.decodeIfPresent(String.self, forKey: .taskFile)
        source = try c.decodeIfPresent(String.self, forKey: .source)
        file = try c.decodeIfPresent(String.self, forKey: .file)
        function = try c.decodeIfPresent(String.self, forKey: .function)
        testFile = try c.decodeIfPresent(String.self, forKey: .testFile)
        options = try c.decodeIfPresent(SolveOptions.self, forKey: .options)
        trace = try c.decodeIfPresent(Bool.self, forKey: .trace)
        workDoneToken = try c.decodeIfPresent(JSONValue.self, forKey: .workDoneToken)
    }

    /// The task and the validated options, or the -32602 error that says which field is wrong.
    func resolved() throws -> (CodeTask, SolveOptions) {
        let task: CodeTask
        let stubFields = source != nil || file != nil || function != nil || testFile != nil
        if stubFields {
            guard self.task == nil, taskFile == nil else {
                throw ResponseError.invalidParams("give either a stub (source/file + function) or a task (task or task_file), not both")
            }
            task = try stubTask()
        } else if let spec = self.task {
            guard !spec.tests.isEmpty else { throw ResponseError.invalidParams("task.tests is empty: give at least one assert") }
            task = spec.task
        } else if let file = taskFile {
            guard file.hasPrefix("/") else { throw ResponseError.invalidParams("task_file must be an absolute path, not '\(file)'") }
            do { task = try TaskLoader.taskFile(URL(fileURLWithPath: file)) } catch {
                throw ResponseError.invalidParams("\(error)")
            }
        } else {
            throw ResponseError.invalidParams("give 'task' ({text, tests, ...}), 'task_file' (an absolute path), "
                                              + "or a stub: 'source' and/or 'file' with 'function'")
        }
        let options = self.options ?? SolveOptions()
        do { try options.validate() } catch {
            throw ResponseError.invalidParams("options.\(error.field): \(error.message)")
        }
        return (task, options)
    }

    private func stubTask() throws -> CodeTask {
        guard let function, !function.isEmpty else {
            throw ResponseError.invalidParams("function: name the function whose body to write (with source or file)")
        }
        for (field, path) in [("file", file), ("test_file", testFile)] {
            if let path, !path.hasPrefix("/") { throw ResponseError.invalidParams("\(field) must be an absolute path, not '\(path)'") }
        }
        let text: String
        if let source {
            text = source
        } else if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ResponseError.invalidParams("file: cannot read \(file) on the daemon's machine; send its text as 'source'")
            }
            text = String(decoding: data, as: UTF8.self)
        } else {
            throw ResponseError.invalidParams("a stub needs the module: 'source' (its text) and/or 'file' (its absolute path)")
        }
        do { return try StubTasks.load(source: text, path: file, function: function, testFile: testFile) } catch {
            throw ResponseError.invalidParams("\(error)")
        }
    }
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

    enum CodingKeys: String, CodingKey, CaseIterable { case source, entryPoint, tests }

    public init(from decoder: any Decoder) throws {
        try StrictDecoding.rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        source = try c.decode(String.self, forKey: .source)
        entryPoint = try c.decodeIfPresent(String.self, forKey: .entryPoint)
        tests = try c.decodeIfPresent(String.self, forKey: .tests)
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

    /// The verdict of a whole or partial program. The entry point is resolved
    /// as everywhere else: an explicit name wins, the tests give the arity.
    public static func check(_ p: CheckParams) throws -> CheckResult {
        let parser: PythonParser
        do { parser = try PythonParser() } catch { throw ResponseError.internalError("\(error)") }
        let tests = p.tests.map(TestFile.statements) ?? []
        let entry = EntryPoint.resolve(name: p.entryPoint, tests: tests)
        if p.tests != nil, entry == nil {
            throw ResponseError.invalidParams("no function call found in the tests: expected lines like `assert f(1, 2) == 3`")
        }
        let program = parser.parse(p.source)
        let report = program.report
        let facts = entry.map { codeFacts(program, entryPoint: $0) }
        return CheckResult(verdict: report.verdict, errors: report.issues, entryPoint: entry?.name,
                           entryPointDefined: facts?.definesEntryPoint,
                           entryPointArityMatches: entry?.arity == nil ? nil : facts?.entryPointArityMatches,
                           indentDepth: report.indentDepth, lineCount: report.lineCount, testArity: entry?.arity)
    }
}

public struct TestParams: Codable, Sendable {
    public var program: String
    public var tests: String
    public var setup: String?
    public var timeout: Double?
    /// `asserts` (default), `pytest` (test functions too) or `doctest` (`tests` is a docstring literal).
    public var kind: TestKind?
    /// The program's module name: what `import NAME` in the tests means, and its `__name__`.
    public var module: String?
    /// pytest: only test functions that reach this name.
    public var select: String?
    public init(program: String, tests: String, setup: String? = nil, timeout: Double? = nil, kind: TestKind? = nil,
                module: String? = nil, select: String? = nil) {
        self.program = program
        self.tests = tests
        self.setup = setup
        self.timeout = timeout
        self.kind = kind
        self.module = module
        self.select = select
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case program, tests, setup, timeout, kind, module, select }

    public init(from decoder: any Decoder) throws {
        try StrictDecoding.rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        program = try c.decode(String.self, forKey: .program)
        tests = try c.decode(String.self, forKey: .tests)
        setup = try c.decodeIfPresent(String.self, forKey: .setup)
        timeout = try c.decodeIfPresent(Double.self, forKey: .timeout)
        kind = try c.decodeIfPresent(TestKind.self, forKey: .kind)
        module = try c.decodeIfPresent(String.self, forKey: .module)
        select = try c.decodeIfPresent(String.self, forKey: .select)
    }

    var job: JailJob {
        JailJob(program: program, tests: tests, setup: setup ?? "", kind: kind ?? .asserts, module: module, select: select)
    }
}

public struct StatusResult: Codable, Sendable {
    public struct Caches: Codable, Sendable {
        public var jailRuns: Int
        public var jailCacheHits: Int
        public var jailHitRate: Double
        public var llmPromptCacheShare: Double
        /// Of `jailRuns`, those a warm jail ran (absent from older daemons).
        public var jailWarmRuns: Int?
        /// The warm jail pool: "ready (N slots)", "starting", "unavailable: why" (absent before any jail was made).
        public var jailPool: String?
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
    /// What the LLM cost since the daemon started.
    public var tokens: Cost
    public var llm: Components.Health
    public var caches: Caches
}
