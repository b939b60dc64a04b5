import Basics
import Foundation
import Policy
import QStar
import Sandbox

/// A value model for code: built per task, since a learned model reads the
/// task (its text, its entry point) as well as the code.
public struct CodeValueModel: Sendable {
    public let name: String
    /// Which trained weights, for models that have them: two QVMs share a name,
    /// and a resumed benchmark must not mix their results.
    public let fingerprint: String?
    public let make: @Sendable (CodeTask) -> ValueModel<CodeState, CodeAction>

    public init(name: String, fingerprint: String? = nil,
                make: @escaping @Sendable (CodeTask) -> ValueModel<CodeState, CodeAction>) {
        self.name = name
        self.fingerprint = fingerprint
        self.make = make
    }

    public static let zero = CodeValueModel(name: "zero") { _ in .zero }
    public static let logprob = CodeValueModel(name: "logprob") { _ in .logprob }
}

/// Turns a `ValueChoice` into a model. The built-in heuristics need nothing;
/// the QVM module supplies a resolver that also loads trained models.
public protocol ValueModelResolver: Sendable {
    func resolve(_ choice: ValueChoice) throws -> CodeValueModel
}

public struct BuiltinValueModels: ValueModelResolver {
    public init() {}
    public func resolve(_ choice: ValueChoice) throws -> CodeValueModel {
        switch choice.kind {
        case .zero: return .zero
        case .logprob: return .logprob
        case .qvm: throw OptionError("value", "the qvm value model needs qcode's QVM module (use the qcode executable or the daemon)")
        }
    }
}

/// A solve's answer and its evidence: the result of `qcode/solve` on the wire
/// and what `qcode solve` prints, in-process or through the daemon.
public struct SolveResult: Sendable, Codable {
    public var taskId: String
    public var method: String
    /// The value model, for methods that use one.
    public var value: String?
    /// The whole program the tests ran against: for a stub task, the module with the new body.
    public var program: String?
    /// A stub task's function as written (decorators, signature, docstring, new body).
    public var function: String?
    /// A stub task's minimal edit: the lines of the module file to replace, and with what.
    public var edit: TextEdit?
    /// Where the visible tests came from ("the docstring of f", a test file, "2 asserts");
    /// nil when there were none.
    public var tests: String?
    /// False when no test judged the program: it is the search's best by process reward
    /// and policy, and `passed`/`total` are 0.
    public var verified: Bool
    /// Visible tests the program passed, of `total`.
    public var passed: Int
    public var total: Int
    /// The verifier's word ("passed", "failed", "syntax error", "timeout" …), or "no program".
    public var outcome: String
    /// The jail's outcome for the returned program; nil without a program.
    public var verdict: TestOutcome?
    /// Per-assert evidence for the returned program (expected vs actual on failures).
    public var asserts: [AssertResult]
    public var statistics: SearchStatistics
    /// The explored tree, when asked for (`--trace`).
    public var trace: [TraceNode]?
    /// Every call and judged program with the tokens spent before it, when
    /// asked for (benchmarks): what the search would have answered at any smaller budget.
    public var ledger: SolveLedger?

    public var solved: Bool { total > 0 && passed == total }

    /// One line for humans: the verdict and what it cost.
    public var summaryLine: String {
        let s = statistics
        let verdict = verified
            ? "# \(solved ? "PASS" : "FAIL") \(passed)/\(total) visible tests (\(outcome))"
            : "# UNVERIFIED: no tests found, nothing ran this program (the best by syntax and the policy; \(outcome))"
        return verdict + " — \(method)\(value.map { "/\($0)" } ?? ""): "
            + "\(s.expansions) expansions, \(s.cost.llmCalls) LLM calls, \(s.cost.generatedTokens) generated tokens, "
            + String(format: "%.1f s", s.wallSeconds)
    }
}

/// A solve's anytime record: the calls it made, the programs it judged and
/// its answer after each, all located by the generated tokens spent before
/// the call that produced them (see `SearchRecorder`).
public struct SolveLedger: Sendable, Codable, Hashable {
    public struct Judged: Sendable, Codable, Hashable {
        public var tokensBefore: Int
        public var program: String
        public var visiblePassed: Bool
        /// Steps into its attempt of the node the program was drawn from (0: a
        /// fresh start), and the attempt when it is not the root's; nil where the
        /// planner does not say (the baselines draw every program fresh).
        public var drawnAtDepth: Int?
        public var attempt: String?
        /// The policy's mean token log-probability of the program, and its
        /// behaviour on probe inputs when the search ran them (see `TraceNode`).
        public var logprob: Double?
        public var behaviour: String?
    }
    public struct Answer: Sendable, Codable, Hashable {
        public var tokensBefore: Int
        /// Index into `judged`.
        public var program: Int
    }
    public var calls: [LedgerCall]
    public var judged: [Judged]
    public var answers: [Answer]

    init(_ result: SearchResult<CodeState>) {
        calls = result.calls
        var index: [Int: Int] = [:]
        var judged: [Judged] = []
        let byID = Dictionary(result.trace.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for node in result.trace.sorted(by: { $0.id < $1.id }) where node.verification != nil {
            index[node.id] = judged.count
            let start = node.attempt.flatMap { byID[$0] }
            judged.append(Judged(tokensBefore: node.tokensBefore, program: "", visiblePassed: node.verification?.reward == 1,
                                 drawnAtDepth: node.drawnFrom.flatMap { byID[$0] }.map { $0.depth - (start?.depth ?? 0) },
                                 attempt: start?.action, logprob: node.logprob, behaviour: node.behaviour))
        }
        self.judged = judged
        answers = result.answers.compactMap { a in index[a.node].map { Answer(tokensBefore: a.tokensBefore, program: $0) } }
    }
}

/// What a solve reports while it runs: `$/progress` values on the wire and
/// the CLI's progress line.
public struct SolveProgress: Sendable, Codable, Hashable {
    public var kind = "report"
    public var expansions: Int
    public var generatedTokens: Int
    /// Finished programs judged so far.
    public var programsTried: Int
    public var bestF: Double
    /// Visible tests the best program so far passes, of `bestTotal`.
    public var bestPassed: Int?
    public var bestTotal: Int?
    /// The verified program with the most passing tests so far.
    public var bestProgram: String?

    public init(_ p: SearchProgress<CodeState>) {
        expansions = p.expansions
        generatedTokens = p.generatedTokens
        programsTried = p.programsTried
        bestF = p.bestF.isFinite ? p.bestF : 0
        bestPassed = p.bestVerification?.passed
        bestTotal = p.bestVerification?.total
        bestProgram = p.best?.program
    }

    public var line: String {
        "programs \(programsTried)  tests \(bestPassed.map { "\($0)/\(bestTotal ?? 0)" } ?? "-")  tokens \(generatedTokens)"
            + "  expansions \(expansions)"
    }
}

/// Runs one method on one task: the seam the CLI, the daemon and the
/// benchmark share, so each measures exactly the same thing.
public struct Solver: Sendable {
    public let model: any LanguageModel
    public let verifier: any ProgramVerifier
    public let prompts: PromptBuilder
    public let values: any ValueModelResolver
    /// The planners `options.method` may name (`Planners.all`; tests add recording ones).
    public let planners: [any SearchAlgorithm]
    public let clock: any SearchClock

    public init(model: any LanguageModel, verifier: any ProgramVerifier, prompts: PromptBuilder = PromptBuilder(),
                values: any ValueModelResolver = BuiltinValueModels(), planners: [any SearchAlgorithm] = Planners.all,
                clock: any SearchClock = SystemClock()) {
        self.model = model
        self.verifier = verifier
        self.prompts = prompts
        self.values = values
        self.planners = planners
        self.clock = clock
    }

    /// Validates `options`, resolves the value model, runs the planner and
    /// collects the evidence for the program it returns.
    /// - Parameter slot: the server slot to pin this search's requests to, so
    ///   its prefix cache survives other searches running beside it.
    public func solve(_ task: CodeTask, options: SolveOptions, trace: Bool = false, ledger: Bool = false, slot: Int? = nil,
                      progress: (@Sendable (SolveProgress) -> Void)? = nil) async throws -> SolveResult {
        try options.validate()
        guard let planner = planners.first(where: { $0.name == options.method }) else {
            throw OptionError("method", "no planner named '\(options.method)' here")
        }
        let value = try values.resolve(options.value)
        let domain = try CodeSearchDomain(task: task, model: model, verifier: verifier, prompts: prompts, options: options,
                                          slot: slot)
        var onProgress: (@Sendable (SearchProgress<CodeState>) -> Void)?
        if let progress { onProgress = { progress(SolveProgress($0)) } }
        let context = SearchContext<CodeSearchDomain>(domain: domain, value: value.make(task), settings: options.search,
                                                      clock: clock, progress: onProgress)
        let result = try await planner.run(context)
        let report = result.best.flatMap { domain.report(for: $0.program) }
        let verification = result.bestVerification
        var record: SolveLedger?
        if ledger {
            var l = SolveLedger(result)
            let programs = result.trace.sorted(by: { $0.id < $1.id }).filter { $0.verification != nil }.map { $0.id }
            for (i, id) in programs.enumerated() { l.judged[i].program = task.program(result.judged[id]?.program ?? "") }
            record = l
        }
        let answer = result.best.flatMap { task.stubAnswer($0.program) }
        // Without tests the domain's "verification" was only the syntax: report none.
        let verified = task.hasTests
        return SolveResult(taskId: task.id, method: planner.name, value: planner.usesValueModel ? value.name : nil,
                           program: result.best.map { task.program($0.program) }, function: answer?.function,
                           edit: answer?.edit, tests: task.testsOrigin, verified: verified,
                           passed: verified ? verification?.passed ?? 0 : 0,
                           total: verified ? verification?.total ?? task.expectedChecks : 0,
                           outcome: verification?.outcome ?? "no program",
                           verdict: report?.outcome, asserts: report?.asserts ?? [], statistics: result.statistics,
                           trace: trace ? Self.annotated(result, task) : nil, ledger: record)
    }
}

extension Solver {
    /// The trace with each judged node's whole program, so a trace of whole-program
    /// planners (best-of-N, MCTSr) shows what was judged, not only how it was reached.
    static func annotated(_ result: SearchResult<CodeState>, _ task: CodeTask) -> [TraceNode] {
        var nodes = result.trace
        for (id, state) in result.judged where nodes.indices.contains(id) { nodes[id].detail = task.program(state.program) }
        return nodes
    }
}
