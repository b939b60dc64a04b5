import Basics
import Foundation
import Policy
import QStar
import Sandbox
import Synchronization

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
    /// Wall time spent waiting for the jail and not for the LLM (runs side by side count once).
    public var jailS: Double?
    /// Wall time with an LLM call in flight (absent in reports of older versions).
    public var llmS: Double?
    /// Wall time spent in qcode itself: neither the LLM nor the jail (absent in reports of older versions).
    public var qcodeS: Double?
    public var stop: String
    public var program: String?
    public var error: String?
    /// The anytime record (with `--budgets`): every call, every judged program
    /// (scored on all tests as well) and the answer after each.
    public var calls: [LedgerCall]?
    public var judged: [JudgedProgram]?
    public var answers: [SolveLedger.Answer]?

    public struct JudgedProgram: Sendable, Codable, Hashable {
        public var tokensBefore: Int
        /// Passed the asserts the search saw.
        public var visiblePassed: Bool
        /// Passed all of `test_list`.
        public var passed: Bool
        /// Where the search drew it (see `SolveLedger.Judged`); absent for the baselines and older reports.
        public var drawnAtDepth: Int?
        public var attempt: String?
        /// The policy's mean token log-probability of the program (3 decimals).
        public var logprob: Double?
        /// Its behaviour on the probe inputs, as a short digest (equal digests:
        /// the same outputs), when the search probed it to choose among passes.
        public var behaviour: String?
    }

    /// What a run limited to `budget` generated tokens would have reported:
    /// it starts exactly the calls this run started below the budget.
    public struct AtBudget: Sendable, Hashable {
        public var passed: Bool
        public var visiblePassed: Bool
        public var tokens: Int
        public var seconds: Double
        /// Some program judged by then passes all tests: the ceiling for any way of choosing.
        public var covered: Bool
    }

    public func at(budget: Int) -> AtBudget? {
        guard let calls, let judged, let answers else { return nil }
        let started = calls.filter { $0.tokensBefore < budget }
        let answer = answers.last { $0.tokensBefore < budget }.map { judged[$0.program] }
        return AtBudget(passed: answer?.passed ?? false, visiblePassed: answer?.visiblePassed ?? false,
                        tokens: started.last?.tokensAfter ?? 0, seconds: started.last?.seconds ?? 0,
                        covered: judged.contains { $0.tokensBefore < budget && $0.passed })
    }

    /// A result with nothing achieved yet: the start of a run, or a task that failed with `error`.
    public static func empty(_ task: CodeTask, error: String? = nil) -> BenchTaskResult {
        BenchTaskResult(taskId: task.id, passed: false, testsPassed: 0, testsTotal: task.tests.count, visiblePassed: false,
                        challengePassed: 0, challengeTotal: task.challengeTests.count, generatedTokens: 0, promptTokens: 0,
                        cachedPromptTokens: 0, llmCalls: 0, expansions: 0, wallS: 0, outsideLlmS: 0, jailS: nil,
                        stop: error == nil ? "" : "error", program: nil, error: error)
    }
}

/// What a benchmark run is: the same identity means results may be pooled,
/// so a resumed report never mixes two models, two QVMs or two settings.
public struct BenchIdentity: Sendable, Codable, Hashable {
    public var data: String
    public var options: SolveOptions
    /// Asserts the search sees.
    public var visible: Int
    /// The trained weights behind `options.value`, when it names a QVM.
    public var valueFingerprint: String?
    /// The LLM: the embedded model's file, or the endpoint and its model name.
    public var model: String
    /// True when each task started from an empty server cache (`FreshStartModel`);
    /// absent in reports of runs that shared the cache between tasks.
    public var freshCache: Bool?

    public init(data: String, options: SolveOptions, visible: Int, valueFingerprint: String?, model: String,
                freshCache: Bool = false) {
        self.data = data
        self.options = options
        self.visible = visible
        self.valueFingerprint = valueFingerprint
        self.model = model
        self.freshCache = freshCache ? true : nil
    }
}

public enum BenchError: Error, Sendable, CustomStringConvertible {
    case mismatch(path: String, field: String, saved: String, now: String)
    case unreadable(path: String, why: String)

    public var description: String {
        switch self {
        case let .mismatch(path, field, saved, now):
            return "\(path) holds a run with \(field) = \(saved), this run has \(now): resuming would mix two experiments; "
                + "choose another --out or delete the file"
        case let .unreadable(path, why):
            return "\(path) is not a qcode bench report this version can resume (\(why)): choose another --out or delete it"
        }
    }
}

/// The whole report: the `--out` JSON, and what resuming reads back.
public struct BenchReport: Sendable, Codable {
    public var identity: BenchIdentity
    public var nTasks = 0
    public var passAt1 = 0.0
    public var challengePassRate: Double?
    public var generatedTokens = 0
    public var promptTokens = 0
    public var cachedPromptTokens = 0
    public var llmCalls = 0
    public var wallS = 0.0
    public var tasks: [BenchTaskResult]

    public init(identity: BenchIdentity, tasks: [BenchTaskResult] = []) {
        self.identity = identity
        self.tasks = tasks
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

    /// The report at `path` if there is one, checked to be the same experiment
    /// as `identity`; tasks that ended in an error are dropped so they run again.
    public static func resume(_ path: String, identity: BenchIdentity) throws -> BenchReport {
        guard let data = FileManager.default.contents(atPath: path) else { return BenchReport(identity: identity) }
        let saved: BenchReport
        do { saved = try JSONCoding.decoder.decode(BenchReport.self, from: data) } catch {
            throw BenchError.unreadable(path: path, why: "\(error)")
        }
        let a = saved.identity, b = identity
        func check(_ field: String, _ x: String, _ y: String) throws {
            if x != y { throw BenchError.mismatch(path: path, field: field, saved: x, now: y) }
        }
        try check("data", a.data, b.data)
        try check("model", a.model, b.model)
        try check("visible", String(a.visible), String(b.visible))
        try check("fresh cache per task", String(a.freshCache ?? false), String(b.freshCache ?? false))
        try check("value model weights", a.valueFingerprint ?? "none", b.valueFingerprint ?? "none")
        try check("options", try JSONCoding.string(a.options), try JSONCoding.string(b.options))
        var report = BenchReport(identity: identity, tasks: saved.tasks.filter { $0.error == nil })
        report.recompute()
        return report
    }

    public func save(to path: String) throws {
        try AtomicFile.write(try JSONCoding.encoder(pretty: true).encode(self), to: URL(fileURLWithPath: path))
    }

    /// Where the wall time went: waiting for the LLM, judging in the jail, and
    /// everything else qcode did (search, syntax, scoring, bookkeeping).
    /// Shares of all tasks' wall time. Tasks of older reports, without `llmS`, count
    /// the LLM as their wall time outside it said, and the jail as their summed runs.
    public var wallSplit: (llm: Double, jail: Double, qcode: Double) {
        let wall = tasks.reduce(0) { $0 + $1.wallS }
        guard wall > 0 else { return (0, 0, 0) }
        let llm = tasks.reduce(0) { $0 + ($1.llmS ?? ($1.wallS - $1.outsideLlmS)) }
        let jail = tasks.reduce(0) { $0 + ($1.jailS ?? 0) }
        return (llm / wall, jail / wall, max(0, wall - llm - jail) / wall)
    }

    /// One markdown table row: the figures a comparison needs.
    public var markdownRow: String {
        let n = max(1, nTasks)
        let value = Planners.named(identity.options.method)?.usesValueModel == true ? identity.options.value.description : "-"
        let split = wallSplit
        return String(format: "| %@ | %@ | %d | %.1f%% | %.0f | %.1f | %.1f | %.1f%% | %.2f%% | %.2f%% |", identity.options.method,
                      value, nTasks, passAt1 * 100, Double(generatedTokens) / Double(n), Double(llmCalls) / Double(n),
                      wallS / Double(n), split.llm * 100, split.jail * 100, split.qcode * 100)
    }
    public static let markdownHeader = """
    | method | value | tasks | pass@1 | gen tokens/task | LLM calls/task | s/task | wall: LLM wait | jail | qcode |
    |---|---|---|---|---|---|---|---|---|---|
    """
}

/// The honest MBPP protocol: the search sees the task text and the first
/// `visible` asserts; the returned program is scored on all of `test_list`
/// (and `challenge_test_list`, reported apart). HumanEval: the search sees the
/// prompt and the docstring's examples (the task's `suite`), `check` scores
/// (the task's `scoring`).
public struct Benchmark: Sendable {
    public let solver: Solver
    public let scorer: any ProgramVerifier
    public let visible: Int
    /// Start each task from an empty server cache (`FreshStartModel`), so a
    /// task's programs do not depend on the tasks run before it.
    public let freshCache: Bool

    public init(solver: Solver, scorer: any ProgramVerifier, visible: Int = 1, freshCache: Bool = false) {
        self.solver = solver
        self.scorer = scorer
        self.visible = visible
        self.freshCache = freshCache
    }

    /// A behaviour fingerprint in 16 hex digits (FNV-1a, the same in every
    /// process): reports need to say which programs behaved alike, not how.
    static func digest(_ fingerprint: String) -> String {
        var x: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in fingerprint.utf8 { x = (x ^ UInt64(b)) &* 0x100_0000_01b3 }
        let hex = String(x, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// - Parameter anytime: record the ledger and score every judged program on
    ///   all tests, so the report answers for every smaller budget too.
    public func run(_ task: CodeTask, options: SolveOptions, anytime: Bool = false) async throws -> BenchTaskResult {
        var result = BenchTaskResult.empty(task)
        // The solve's LLM calls and jail runs are timed as the user waits for them.
        let meter = WallMeter()
        let model = freshCache ? FreshStartModel(solver.model) : solver.model
        let timed = Solver(model: TimedModel(model, meter: meter), verifier: TimedVerifier(solver.verifier, meter: meter),
                           prompts: solver.prompts, values: solver.values, planners: solver.planners, clock: solver.clock)
        let started = ContinuousClock.now
        let outcome = try await timed.solve(task.visible(visible), options: options, ledger: anytime)
        let split = meter.split(wall: (ContinuousClock.now - started).seconds)
        let cost = outcome.statistics.cost
        result.generatedTokens = cost.generatedTokens
        result.promptTokens = cost.promptTokens
        result.cachedPromptTokens = cost.cachedPromptTokens
        result.llmCalls = cost.llmCalls
        result.expansions = outcome.statistics.expansions
        result.stop = outcome.statistics.stop.rawValue
        result.program = outcome.program
        result.visiblePassed = outcome.solved
        if let program = outcome.program {
            // All of `test_list`, or the task's own scoring tests (HumanEval's `check`).
            let all = try await scorer.run(task.scoringJob(program))
            if task.scoring != nil { result.testsTotal = all.total }
            result.testsPassed = all.passed
            result.passed = all.outcome == .passed
            if !task.challengeTests.isEmpty {
                let challenge = try await scorer.run(JailJob(program: program, tests: task.challengeTests.joined(separator: "\n"),
                                                             setup: task.setup))
                result.challengePassed = challenge.passed
            }
        }
        if let ledger = outcome.ledger {
            var scored: [String: Bool] = [:]
            var judged: [BenchTaskResult.JudgedProgram] = []
            for j in ledger.judged {
                if scored[j.program] == nil {
                    let all = try await scorer.run(task.scoringJob(j.program))
                    scored[j.program] = all.outcome == .passed
                }
                judged.append(.init(tokensBefore: j.tokensBefore, visiblePassed: j.visiblePassed, passed: scored[j.program]!,
                                    drawnAtDepth: j.drawnAtDepth, attempt: j.attempt,
                                    logprob: j.logprob.map { ($0 * 1000).rounded() / 1000 },
                                    behaviour: j.behaviour.map(Self.digest)))
            }
            result.calls = ledger.calls
            result.judged = judged
            result.answers = ledger.answers
        }
        // The solve's own wall time (scoring on the hidden tests is the benchmark's, not the method's).
        result.wallS = split.wall
        result.llmS = split.llm
        result.jailS = split.jail
        result.qcodeS = split.qcode
        result.outsideLlmS = max(0, split.wall - split.llm)
        return result
    }
}

/// The policy for one benchmark task, started from an empty server cache.
///
/// Why: llama.cpp reuses the longest cached prefix of a prompt, and its
/// decoding is not bit-identical between a prefix evaluated now and the same
/// prefix cached by another request (how much of the cache a batch spans
/// changes the order of its sums). So the tasks run before one, and how far
/// their searches went, changed that task's programs: between a run at 800
/// and one at 1600 tokens, 7 to 30 of 90 MBPP tasks drew different programs
/// below 800. With every request of a task on one slot and the first one
/// evaluated from scratch, a task's programs depend on its own requests
/// alone, so an anytime report at a large budget answers exactly as a run at
/// a smaller one, and a task run alone as it ran among others. (The server
/// must not restore prompts of earlier tasks from its RAM cache either:
/// `scripts/bench-anytime` starts its servers with `--cache-ram 0`.)
public final class FreshStartModel: LanguageModel {
    public let base: any LanguageModel
    public let slot: Int
    private let started = Mutex(false)

    public init(_ base: any LanguageModel, slot: Int = 0) {
        self.base = base
        self.slot = slot
    }

    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        var request = request
        request.slot = slot
        request.reuseCache = started.withLock { started in
            defer { started = true }
            return started
        }
        return try await base.complete(request)
    }
}
