import Foundation
import QStar
import Sandbox

/// One task's line in a benchmark report.
public struct BenchTaskResult: Sendable, Codable, Hashable {
    public var taskId: String
    /// All of `test_list` passed (the score; the search saw only the visible ones).
    public var passed: Bool
    public var testsPassed: Int
    public var testsTotal: Int
    public var visiblePassed: Bool
    public var challengePassed: Int
    public var challengeTotal: Int
    public var generatedTokens: Int
    public var promptTokens: Int
    public var cachedPromptTokens: Int
    public var llmCalls: Int
    public var expansions: Int
    public var wallS: Double
    /// Wall time not spent waiting for the LLM (search, syntax, jail).
    public var outsideLlmS: Double
    public var stop: String
    public var program: String?
    public var error: String?

    /// A result with nothing achieved yet: the start of a run, or a task that failed with `error`.
    public static func empty(_ task: CodeTask, error: String? = nil) -> BenchTaskResult {
        BenchTaskResult(taskId: task.id, passed: false, testsPassed: 0, testsTotal: task.tests.count, visiblePassed: false,
                        challengePassed: 0, challengeTotal: task.challengeTests.count, generatedTokens: 0, promptTokens: 0,
                        cachedPromptTokens: 0, llmCalls: 0, expansions: 0, wallS: 0, outsideLlmS: 0,
                        stop: error == nil ? "" : "error", program: nil, error: error)
    }
}

/// The whole report: the `--out` JSON, and what resuming reads back.
public struct BenchReport: Sendable, Encodable {
    // Snake case throughout; `passAt_1` becomes `pass_at_1` (plain `passAt1` would lose the underscore).
    enum CodingKeys: String, CodingKey {
        case data, method, value, settings, nTasks, passAt1 = "passAt_1", challengePassRate, generatedTokens,
             promptTokens, cachedPromptTokens, llmCalls, wallS, tasks
    }

    public var data: String
    public var method: String
    public var value: String
    public var settings: [String: String]
    public var nTasks: Int
    public var passAt1: Double
    public var challengePassRate: Double?
    public var generatedTokens: Int
    public var promptTokens: Int
    public var cachedPromptTokens: Int
    public var llmCalls: Int
    public var wallS: Double
    public var tasks: [BenchTaskResult]

    public init(data: String, method: String, value: String, settings: [String: String], tasks: [BenchTaskResult]) {
        self.data = data
        self.method = method
        self.value = value
        self.settings = settings
        self.tasks = tasks
        nTasks = 0; passAt1 = 0; generatedTokens = 0; promptTokens = 0; cachedPromptTokens = 0; llmCalls = 0; wallS = 0
        recompute()
    }

    public mutating func recompute() {
        nTasks = tasks.count
        passAt1 = tasks.isEmpty ? 0 : Double(tasks.filter(\.passed).count) / Double(tasks.count)
        let challenge = tasks.reduce(0) { $0 + $1.challengeTotal }
        challengePassRate = challenge == 0 ? nil : Double(tasks.reduce(0) { $0 + $1.challengePassed }) / Double(challenge)
        generatedTokens = tasks.reduce(0) { $0 + $1.generatedTokens }
        promptTokens = tasks.reduce(0) { $0 + $1.promptTokens }
        cachedPromptTokens = tasks.reduce(0) { $0 + $1.cachedPromptTokens }
        llmCalls = tasks.reduce(0) { $0 + $1.llmCalls }
        wallS = tasks.reduce(0) { $0 + $1.wallS }
    }

    public static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }

    /// Reads back what resuming needs: the settings and the finished tasks
    /// (the totals are recomputed from the tasks).
    public static func resume(_ data: Data) throws -> BenchReport {
        struct Saved: Decodable {
            var data: String
            var method: String
            var value: String
            var settings: [String: String]
            var tasks: [BenchTaskResult]
        }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        let saved = try d.decode(Saved.self, from: data)
        return BenchReport(data: saved.data, method: saved.method, value: saved.value, settings: saved.settings,
                           tasks: saved.tasks)
    }

    /// One markdown table row: the figures a comparison needs.
    public var markdownRow: String {
        let n = max(1, nTasks)
        return String(format: "| %@ | %@ | %d | %.1f%% | %.0f | %.1f | %.1f |", method, value, nTasks, passAt1 * 100,
                      Double(generatedTokens) / Double(n), Double(llmCalls) / Double(n), wallS / Double(n))
    }
    public static let markdownHeader = """
    | method | value | tasks | pass@1 | gen tokens/task | LLM calls/task | s/task |
    |---|---|---|---|---|---|---|
    """
}

/// The honest MBPP protocol: the search sees the task text and the first
/// `visible` asserts; the returned program is scored on all of `test_list`
/// (and `challenge_test_list`, reported apart).
public struct Benchmark: Sendable {
    public let solver: Solver
    public let scorer: any ProgramVerifier
    public let visible: Int

    public init(solver: Solver, scorer: any ProgramVerifier, visible: Int = 1) {
        self.solver = solver
        self.scorer = scorer
        self.visible = visible
    }

    public func run(_ task: CodeTask, options: SolveOptions, value: CodeValueModel) async throws -> BenchTaskResult {
        let started = ContinuousClock.now
        var result = BenchTaskResult.empty(task)
        let outcome = try await solver.solve(task.visible(visible), options: options, value: value)
        let cost = outcome.statistics.cost
        result.generatedTokens = cost.generatedTokens
        result.promptTokens = cost.promptTokens
        result.cachedPromptTokens = cost.cachedPromptTokens
        result.llmCalls = cost.llmCalls
        result.expansions = outcome.statistics.expansions
        result.stop = outcome.statistics.stop.rawValue
        result.program = outcome.program
        result.visiblePassed = outcome.verification?.reward == 1
        if let program = outcome.program {
            let all = try await scorer.run(JailJob(program: program, tests: task.tests.joined(separator: "\n"), setup: task.setup))
            result.testsPassed = all.passed
            result.passed = all.outcome == .passed
            if !task.challengeTests.isEmpty {
                let challenge = try await scorer.run(JailJob(program: program, tests: task.challengeTests.joined(separator: "\n"),
                                                             setup: task.setup))
                result.challengePassed = challenge.passed
            }
        }
        let wall = ContinuousClock.now - started
        result.wallS = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        result.outsideLlmS = max(0, result.wallS - cost.llmSeconds)
        return result
    }
}

