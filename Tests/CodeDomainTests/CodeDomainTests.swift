import Basics
import Foundation
import Policy
import PythonSyntax
import QStar
import Sandbox
import Synchronization
import Testing
import TestSupport
@testable import CodeDomain

@Suite struct TaskTests {
    @Test(.enabled(if: Prerequisite.mbpp.shouldRun)) func loadsMBPPRecordsWithTheirFields() throws {
        try Prerequisite.mbpp.require()
        let tasks = try TaskLoader.mbppFile(mbppDir.appendingPathComponent("validation.jsonl"))
        #expect(tasks.count == 90)
        let first = try #require(tasks.first)
        #expect(first.id == "511")
        #expect(first.tests.count == 3)
        #expect(first.entry == EntryPoint(name: "find_Min_Sum", arity: 1))
        #expect(first.reference != nil)
        #expect(first.visible(1).tests == [first.tests[0]])
    }

    @Test func aBrokenJSONLLineSaysWhere() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID()).jsonl")
        try "{\"text\":\"x\",\"test_list\":[\"assert f()\"]}\nnot json\n".write(to: url, atomically: true, encoding: .utf8)
        #expect(throws: TaskError.malformed("\(url.path):2", "not a JSON object; each line must be one MBPP record")) {
            try TaskLoader.mbppFile(url)
        }
    }

    @Test func theExampleTasksLoad() throws {
        let dirs = try FileManager.default.contentsOfDirectory(at: repoRoot.appendingPathComponent("examples"), includingPropertiesForKeys: nil)
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("task.json").path) }
        #expect(dirs.count >= 3)
        for dir in dirs {
            let task = try TaskLoader.taskFile(dir.appendingPathComponent("task.json"))
            #expect(task.tests.count >= 3, "\(dir.lastPathComponent)")
            #expect(task.entry != nil, "\(dir.lastPathComponent)")
        }
    }

    @Test func splitsTestFilesIntoStatements() {
        let source = """
        import math
        # a comment
        assert f(1) == 2

        assert f(
            3) == 4
        assert g([1, 2,
                  3]) == [3]
        """
        #expect(TestFile.statements(source) == ["import math\nassert f(1) == 2", "assert f(\n    3) == 4",
                                                  "assert g([1, 2,\n          3]) == [3]"])
    }
    @Test func aMultiLineStringStaysInItsStatement() {
        let source = "assert f('''\nx = (\n''') == 1\nassert f(\"#\") == 2\n"
        #expect(TestFile.statements(source) == ["assert f('''\nx = (\n''') == 1", "assert f(\"#\") == 2"])
    }
}

@Suite struct PromptTests {
    @Test func theTaskPartIsByteIdenticalAcrossSteps() {
        let builder = PromptBuilder()
        let p0 = builder.prompt(for: addTask, lines: [])
        let p1 = builder.prompt(for: addTask, lines: ["def add(a, b):"])
        let p2 = builder.prompt(for: addTask, lines: ["def add(a, b):", "    return a + b"])
        #expect(p1.hasPrefix(p0) && p2.hasPrefix(p1))
        #expect(p0.hasSuffix("<|im_start|>assistant\n```python\n"))
        #expect(p0.contains("assert add(1, 2) == 3\nassert add(0, 0) == 0<|im_end|>"))
        #expect(p2.hasSuffix("    return a + b\n"))
    }
}

@Suite struct DomainTests {
    func domain(_ model: ScriptedModel, verifier: any ProgramVerifier = ScriptedVerifier()) throws -> CodeSearchDomain {
        try CodeSearchDomain(task: addTask, model: model, verifier: verifier)
    }

    @Test func turnsChoicesIntoMergedLineActions() async throws {
        let model = ScriptedModel(lines: ["": [line("def add(a, b):", -0.2), line("def add(a, b):  ", -0.1), line("```"),
                                              line("", finish: .endOfText), line("x = 1", finish: .endOfText)]])
        let d = try domain(model)
        let expansion = try await d.propose(from: d.root, k: 5, seed: 1)
        let actions = expansion.proposals.map(\.action)
        #expect(actions == [CodeAction(line: "def add(a, b):", ends: false), CodeAction(line: nil, ends: true),
                            CodeAction(line: "x = 1", ends: true)])
        #expect(expansion.proposals[0].count == 2)
        #expect(expansion.proposals[0].logprobMean == -0.1)
        #expect(expansion.proposals[1].count == 2)
        #expect(expansion.cost.generatedTokens == 10)
    }

    @Test func rewardsFollowTheSyntaxVerdict() async throws {
        let d = try domain(ScriptedModel(lines: [:]))
        let header = d.apply(CodeAction(line: "def add(a, b):", ends: false), to: d.root)
        #expect(d.processReward(of: header) == 0)
        #expect(header.facts.definesEntryPoint)
        let broken = d.apply(CodeAction(line: "    return (a + b))", ends: false), to: header)
        #expect(d.processReward(of: broken) == -1)
        // Ending right after a header leaves a block with no body: as bad as broken.
        let endedEarly = d.apply(CodeAction(line: nil, ends: true), to: header)
        #expect(d.isTerminal(endedEarly))
        #expect(d.processReward(of: endedEarly) == -1)
        let good = d.apply(CodeAction(line: "    return a + b", ends: true), to: header)
        #expect(d.processReward(of: good) == 0)
        #expect(good.program == "def add(a, b):\n    return a + b\n")
    }

    @Test func keysIgnoreTrailingSpaceAndBlankRuns() throws {
        let d = try domain(ScriptedModel(lines: [:]))
        let a = d.apply(CodeAction(line: "x = 1  ", ends: false), to: d.root)
        let b = d.apply(CodeAction(line: "", ends: false), to: d.apply(CodeAction(line: "", ends: false), to: d.apply(CodeAction(line: "x = 1", ends: false), to: d.root)))
        let c = d.apply(CodeAction(line: "", ends: false), to: d.apply(CodeAction(line: "x = 1", ends: false), to: d.root))
        #expect(d.key(of: a) == "x = 1")
        #expect(d.key(of: b) == d.key(of: c))
        #expect(d.key(of: d.apply(CodeAction(line: nil, ends: true), to: a)) != d.key(of: a))
    }

    @Test func qstarFindsTheProgramThatPassesAndSkipsTheBrokenBranch() async throws {
        let model = ScriptedModel(lines: [
            "": [line("def add(a, b):", -0.1)],
            "def add(a, b):": [line("    return a - b", -0.05), line("    return (a + b))", -0.01), line("    return a + b", -0.3)],
            "def add(a, b):\n    return a - b": [line("```")],
            "def add(a, b):\n    return a + b": [line("```")],
            "def add(a, b):\n    return (a + b))": [line("```")],
        ])
        let verifier = ScriptedVerifier()
        let d = try domain(model, verifier: verifier)
        var kSteps = SearchSettings()
        kSteps.continuations = false
        kSteps.greedyFirst = false
        let result = try await AStarSearch().run(SearchContext(domain: d, settings: kSteps))
        #expect(result.best?.program == "def add(a, b):\n    return a + b\n")
        #expect(result.statistics.stop == .solved)
        // The broken line was never expanded: its g is −1 under min aggregation.
        let brokenNode = try #require(result.trace.first { $0.action == "    return (a + b))" })
        #expect(brokenNode.expandedAt == nil && brokenNode.g == -1)
        let programs = verifier.jobs.withLock { $0.map(\.program) }
        #expect(programs == ["def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n"])
        #expect(verifier.jobs.withLock { $0[0].tests } == "assert add(1, 2) == 3\nassert add(0, 0) == 0")
    }

    @Test func tokenStepsAppendChunksThatSpanAndSplitLines() async throws {
        let model = ScriptedModel(lines: [:], chunks: [
            "": [CompletionChoice(text: "def add(a, b):\n    ret", tokenLogprobs: [-0.1, -0.1], finish: .length, tokens: 8)],
            "def add(a, b):\n    ret": [CompletionChoice(text: "urn a + b\n", tokenLogprobs: [-0.1], finish: .stop, tokens: 5)],
        ])
        let verifier = ScriptedVerifier()
        var options = SolveOptions()
        options.stepTokens = 8
        options.search.k = 2
        options.search.continuations = false
        options.search.greedyFirst = false
        let d = try CodeSearchDomain(task: addTask, model: model, verifier: verifier, options: options)
        let result = try await AStarSearch().run(SearchContext(domain: d, settings: options.search))
        #expect(result.best?.program == "def add(a, b):\n    return a + b\n")
        #expect(result.statistics.expansions == 2)
        // The unfinished line went to the model as is, with no newline added.
        #expect(model.prompts.last?.hasSuffix("```python\ndef add(a, b):\n    ret") == true)
        #expect(verifier.jobs.withLock { $0.count } == 1)
    }

    @Test func continuationsSplitIntoCodeStepsWithTheirLogprobs() async throws {
        let choice = CompletionChoice(text: "def add(a, b):\n    # sum\n    return a + b\n\n", tokenLogprobs: [-0.1, -0.2, -1.0, -0.3, -0.1, -0.05],
                                      finish: .stop, tokens: 6, tokenTexts: ["def", " add(a, b):\n", "    # sum\n", "    return", " a + b", "\n"])
        let d = try domain(ScriptedModel(programs: [choice]))
        let batch = try await d.continuations(from: d.root, n: 1, temperature: 0, seed: 0)
        let path = try #require(batch.paths.first)
        // The header waits for its first statement; the comment rides along but does not decide.
        #expect(path.map(\.action) == [CodeAction(line: "def add(a, b):\n    # sum\n    return a + b", ends: true)])
        #expect(abs(path[0].logprobSum - -1.75) < 1e-9)
        #expect(abs(path[0].decisionLogprob - -0.75) < 1e-9)
        #expect(batch.cost.generatedTokens == 6)
        let state = path.reduce(d.root) { d.apply($1.action, to: $0) }
        #expect(state.finished && state.facts.verdict == .valid && state.program == "def add(a, b):\n    # sum\n    return a + b\n")
    }

    @Test func codeStepsGroupCommentsWithTheCodeAfterThem() {
        let lines = ["def f(xs):", "    # start empty", "    out = []", "", "    # every item", "    for x in xs:",
                     "        out.append(", "            x)", "    return out"]
            .map { StepSplitter.Line(text: $0, logprob: -1, tokens: 1) }
        let steps = StepSplitter.code(lines).map(\.text)
        #expect(steps == ["def f(xs):\n    # start empty\n    out = []",
                          "\n    # every item\n    for x in xs:\n        out.append(\n            x)",
                          "    return out"])
        #expect(StepSplitter.code(lines).map(\.decisionLogprob) == [-2, -3, -1])
    }

    @Test func withCodeStepsCommentsDoNotMakeANewState() throws {
        let d = try domain(ScriptedModel())
        let a = d.apply(CodeAction(line: "x = 1  # one", ends: false), to: d.root)
        let b = d.apply(CodeAction(line: "# set x\nx = 1", ends: false), to: d.root)
        #expect(d.key(of: a) == d.key(of: b))
        // Line steps keep comments apart, or a comment line could never be a step.
        var lines = SolveOptions()
        lines.steps = .lines
        let l = try CodeSearchDomain(task: addTask, model: ScriptedModel(), verifier: ScriptedVerifier(), options: lines)
        #expect(l.key(of: l.apply(CodeAction(line: "# set x", ends: false), to: l.root)) != l.key(of: l.root))
    }

    @Test func theExamplesFramingPutsWorkedExamplesBeforeTheSameTaskTurn() async throws {
        let model = ScriptedModel(programs: [CompletionChoice(text: "    return a + b\n", tokenLogprobs: [-0.1], finish: .stop, tokens: 5)])
        var options = SolveOptions()
        options.framings = [.instruct, .examples]
        let d = try CodeSearchDomain(task: addTask, model: model, verifier: ScriptedVerifier(), options: options)
        let alternatives = d.alternatives()
        #expect(alternatives.map(\.label) == ["framing: examples"])
        let framed = try #require(alternatives.first?.state)
        #expect(framed.framing == .examples && d.root.framing == .instruct)
        // Unfinished states under another framing are other nodes (their prompt differs); finished programs are one.
        #expect(d.key(of: framed) != d.key(of: d.root))
        let header = CodeAction(line: "def add(a, b):", ends: false)
        #expect(d.key(of: d.apply(header, to: framed)) != d.key(of: d.apply(header, to: d.root)))
        let whole = CodeAction(line: "def add(a, b):\n    return a + b", ends: true)
        #expect(d.key(of: d.apply(whole, to: framed)) == d.key(of: d.apply(whole, to: d.root)))
        // A step keeps its framing: the draw after it is asked with the examples first.
        _ = try await d.continuations(from: d.apply(header, to: framed), n: 1, temperature: 0, seed: 0)
        let examples = PromptBuilder().prefix(for: addTask, framing: .examples)
        #expect(model.prompts.last == examples + "def add(a, b):\n")
        let instruct = PromptBuilder().prefix(for: addTask)
        let taskTurn = "<|im_start|>user\nWrite a function to add two numbers.\nYour code should pass these tests:\n"
            + "assert add(1, 2) == 3\nassert add(0, 0) == 0<|im_end|>\n<|im_start|>assistant\n```python\n"
        #expect(instruct.hasSuffix(taskTurn) && examples.hasSuffix(taskTurn))
        #expect(examples.components(separatedBy: "```<|im_end|>").count == 4 && examples.contains("def merge_add(d1, d2):"))
        // Framings that put a task the same way add no attempt: a plain prompt has no chat to hold examples.
        let plain = try CodeSearchDomain(task: addTask, model: model, verifier: ScriptedVerifier(),
                                         prompts: PromptBuilder(style: .plain), options: options)
        #expect(plain.alternatives().isEmpty)
        // With the examples first, every method starts from them.
        options.framings = [.examples]
        let first = try CodeSearchDomain(task: addTask, model: model, verifier: ScriptedVerifier(), options: options)
        #expect(first.root.framing == .examples && first.alternatives().isEmpty)
    }

    /// A wrong worked example would teach the policy a wrong habit: each passes its own test in the jail.
    @Test func theWorkedExamplesPassTheirOwnTests() async throws {
        let jail = try Jail()
        for example in PromptBuilder.examples {
            let report = try await jail.run(JailJob(program: example.program + "\n", tests: example.tests.joined(separator: "\n")))
            #expect(report.outcome == .passed, "\(example.task): \(report.outcome)")
        }
    }

    @Test func aRevisionShowsTheFailedProgramAndTheFailingAssert() async throws {
        let model = ScriptedModel(programs: [CompletionChoice(text: "def add(a, b):\n    return a - b\n", tokenLogprobs: [-0.1],
                                                              finish: .stop, tokens: 9)])
        let d = try domain(model)
        let failed = d.apply(CodeAction(line: "def add(a, b):\n    return a - b", ends: true), to: d.root)
        let verification = try await d.verify(failed)
        #expect(verification.reward == 0 && verification.credit > 0 && verification.credit < 1)
        let retry = try #require(d.revision(of: failed, after: verification))
        #expect(!retry.finished && retry.program.isEmpty && d.key(of: retry) != d.key(of: d.root))
        _ = try await d.continuations(from: retry, n: 1, temperature: 0, seed: 0)
        let prompt = try #require(model.prompts.last)
        #expect(prompt.contains("```python\ndef add(a, b):\n    return a - b\n```<|im_end|>"))
        #expect(prompt.contains("The code fails this test:\nassert add(1, 2) == 3\nAssertionError: got 0, expected 3"))
        #expect(prompt.hasSuffix("Write the corrected code.<|im_end|>\n<|im_start|>assistant\n```python\n"))
        // Only the visible tests are in the feedback: the task here shows both.
        #expect(!prompt.contains("hidden"))
        // A step inside the retry keeps it: the next draw still sees the failed program and its feedback.
        let deeper = d.apply(CodeAction(line: "def add(a, b):", ends: false), to: retry)
        #expect(deeper.attempt == retry.attempt && d.key(of: deeper) != d.key(of: d.apply(CodeAction(line: "def add(a, b):", ends: false), to: d.root)))
        _ = try await d.continuations(from: deeper, n: 1, temperature: 0, seed: 0)
        #expect(model.prompts.last == prompt + "def add(a, b):\n")
    }
}

@Suite struct BenchReportTests {
    func identity(_ options: SolveOptions = SolveOptions(), fingerprint: String? = nil, model: String = "m",
                  freshCache: Bool = false) -> BenchIdentity {
        BenchIdentity(data: "x.jsonl", options: options, visible: 1, valueFingerprint: fingerprint, model: model, freshCache: freshCache)
    }

    @Test func theReportHasTheDocumentedKeysAndResumesFromItsOwnFile() throws {
        var passed = BenchTaskResult.empty(addTask)
        passed.passed = true
        passed.generatedTokens = 40
        passed.llmCalls = 2
        var failed = BenchTaskResult.empty(addTask, error: "server down")
        failed.taskId = "other"
        let report = BenchReport(identity: identity(), tasks: [passed, failed])
        #expect(report.passAt1 == 0.5)
        let path = try tempDirectory().appendingPathComponent("r.json").path
        try report.save(to: path)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        for key in ["pass_at1", "n_tasks", "generated_tokens", "prompt_tokens", "llm_calls", "wall_s", "tasks", "identity"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        // Resuming keeps finished tasks and drops the one that errored, to run it again.
        let back = try BenchReport.resume(path, identity: identity())
        #expect(back.tasks == [passed])
        #expect(back.passAt1 == 1 && back.generatedTokens == 40)
    }

    @Test func resumingRefusesAnotherExperiment() throws {
        let path = try tempDirectory().appendingPathComponent("r.json").path
        try BenchReport(identity: identity(fingerprint: "qvm-a"), tasks: [BenchTaskResult.empty(addTask)]).save(to: path)
        // Another QVM's weights, another model, other options: each is refused, naming what differs.
        #expect { try BenchReport.resume(path, identity: identity(fingerprint: "qvm-b")) } throws: {
            "\($0)".contains("value model weights = qvm-a, this run has qvm-b")
        }
        #expect { try BenchReport.resume(path, identity: identity(fingerprint: "qvm-a", model: "other")) } throws: {
            "\($0)".contains("model = m")
        }
        var k8 = SolveOptions()
        k8.search.k = 8
        #expect { try BenchReport.resume(path, identity: identity(k8, fingerprint: "qvm-a")) } throws: { "\($0)".contains("options") }
        // Tasks started from an empty cache draw other programs than tasks that shared it.
        #expect { try BenchReport.resume(path, identity: identity(fingerprint: "qvm-a", freshCache: true)) } throws: {
            "\($0)".contains("fresh cache per task = false, this run has true")
        }
        #expect(try BenchReport.resume(path, identity: identity(fingerprint: "qvm-a")).tasks.count == 1)
    }
}

/// The honest protocol, end to end on doubles: the search sees the first
/// assert only — in every prompt and every verification — and the program is
/// scored on all of them, challenge tests apart.
@Suite struct BenchmarkProtocolTests {
    static let task = CodeTask(id: "7", text: "Write a function to add two numbers.",
                               tests: ["assert add(1, 2) == 3", "assert add(5, 5) == 10", "assert add(0, 0) == 0"],
                               challengeTests: ["assert add(-1, 1) == 0"])

    @Test(arguments: Planners.names)
    func hiddenAssertsNeverReachTheSearch(method: String) async throws {
        let model = ScriptedModel(lines: ["": [line("def add(a, b):")], "def add(a, b):": [line("    return a + b", finish: .endOfText)]],
                                  programs: [CompletionChoice(text: "def add(a, b):\n    return a + b\n", tokenLogprobs: [-0.1],
                                                              finish: .stop, tokens: 9)])
        let searchVerifier = ScriptedVerifier()
        let scorer = ScriptedVerifier()
        var options = SolveOptions()
        options.method = method
        let bench = Benchmark(solver: Solver(model: model, verifier: searchVerifier), scorer: scorer, visible: 1)
        let result = try await bench.run(Self.task, options: options)

        for prompt in model.prompts {
            #expect(prompt.contains("assert add(1, 2) == 3"))
            #expect(!prompt.contains("add(5, 5)") && !prompt.contains("add(0, 0)") && !prompt.contains("add(-1, 1)"))
        }
        let searched = searchVerifier.jobs.withLock { $0 }
        #expect(!searched.isEmpty)
        #expect(searched.allSatisfy { $0.tests == "assert add(1, 2) == 3" })
        let scored = scorer.jobs.withLock { $0 }
        #expect(scored.map(\.tests) == [Self.task.tests.joined(separator: "\n"), "assert add(-1, 1) == 0"])
        #expect(result.passed && result.testsPassed == 3 && result.testsTotal == 3)
        #expect(result.challengePassed == 1 && result.challengeTotal == 1)
        #expect(result.visiblePassed)
    }

    @Test func aProgramPassingOnlyTheVisibleAssertScoresAsFailed() async throws {
        struct VisibleOnly: ProgramVerifier {
            let inner = ScriptedVerifier()
            func run(_ job: JailJob) async throws -> TestReport {
                // Passes the first assert only: the hidden ones fail.
                try await job.tests.contains("add(5, 5)") ? ScriptedVerifier(passing: "never").run(job) : inner.run(job)
            }
        }
        let model = ScriptedModel(programs: [CompletionChoice(text: "def add(a, b):\n    return a + b\n", tokenLogprobs: [-0.1],
                                                              finish: .stop, tokens: 9)])
        var options = SolveOptions()
        options.method = "greedy"
        let result = try await Benchmark(solver: Solver(model: model, verifier: VisibleOnly()), scorer: VisibleOnly())
            .run(Self.task, options: options)
        #expect(result.visiblePassed && !result.passed)
    }
}

/// With `freshCache` every task's first request starts from an empty server
/// cache and all of its requests share one slot, whichever task ran before;
/// without it requests go where the caller sends them, cache reused.
@Test(arguments: ["best-of-n", "qstar"])
func aFreshCacheBenchStartsEachTaskFromScratchOnOneSlot(method: String) async throws {
    let model = ScriptedModel(programs: AnytimeReportTests.programs)
    var options = SolveOptions()
    options.method = method
    options.search.samples = 64
    let bench = Benchmark(solver: Solver(model: model, verifier: ScriptedVerifier()), scorer: ScriptedVerifier(), freshCache: true)
    for _ in 0..<2 {
        let before = model.requests.withLock { $0.count }
        let result = try await bench.run(addTask, options: options)
        #expect(result.passed)
        let task = model.requests.withLock { Array($0[before...]) }
        #expect(task.count >= 2)
        #expect(task.map(\.reuseCache) == [false] + Array(repeating: true, count: task.count - 1))
        #expect(task.allSatisfy { $0.slot == 0 })
    }
    let shared = ScriptedModel(programs: AnytimeReportTests.programs)
    _ = try await Benchmark(solver: Solver(model: shared, verifier: ScriptedVerifier()), scorer: ScriptedVerifier())
        .run(addTask, options: options)
    #expect(shared.requests.withLock { $0.allSatisfy { $0.reuseCache && $0.slot == nil } })
}

@Test func behaviourDigestsAreStableShortAndTellBehavioursApart() {
    let a = Benchmark.digest("=3\u{1F}=4"), b = Benchmark.digest("=3\u{1F}=5")
    #expect(a == Benchmark.digest("=3\u{1F}=4") && a != b)
    #expect(a.count == 16 && Benchmark.digest("").count == 16 && a.allSatisfy(\.isHexDigit))
    // FNV-1a of the empty string is its offset basis: the same in every process.
    #expect(Benchmark.digest("") == "cbf29ce484222325")
}

/// The report of one run at a large budget answers for smaller ones: what
/// `at(budget:)` says equals what a run limited to that budget reports.
@Suite struct AnytimeReportTests {
    static let programs = ["def add(a, b):\n    return a - b\n", "def add(a, b):\n    return b - a\n",
                           "def add(a, b):\n    return a * b\n", "def add(a, b):\n    return a + b\n"]
        .map { CompletionChoice(text: $0, tokenLogprobs: [-0.5], finish: .stop, tokens: 10) }

    @Test(arguments: ["best-of-n", "qstar"])
    func atBudgetMatchesABudgetLimitedRun(method: String) async throws {
        func run(_ budget: Int, anytime: Bool) async throws -> BenchTaskResult {
            var options = SolveOptions()
            options.method = method
            options.search.samples = 64
            options.search.budget = Budget(maxGeneratedTokens: budget)
            let bench = Benchmark(solver: Solver(model: ScriptedModel(programs: Self.programs), verifier: ScriptedVerifier()),
                                  scorer: ScriptedVerifier(), visible: 1)
            return try await bench.run(addTask, options: options, anytime: anytime)
        }
        let full = try await run(1600, anytime: true)
        #expect(full.passed && full.judged?.count == 4)
        // Q* says where each program was drawn (here: all fresh from the root); the baselines do not.
        #expect(full.judged?.map(\.drawnAtDepth) == Array(repeating: method == "qstar" ? 0 : nil, count: 4))
        // Every judged program carries how sure the policy was of it; none was probed (no selection).
        #expect(full.judged?.allSatisfy { ($0.logprob ?? 0) < 0 && $0.behaviour == nil } == true)
        for budget in [5, 15, 25, 35] {
            let point = try #require(full.at(budget: budget))
            let limited = try await run(budget, anytime: false)
            #expect(point.passed == limited.passed, "budget \(budget)")
            #expect(point.tokens == limited.generatedTokens, "budget \(budget)")
        }
        // Coverage: a correct program exists only once the fourth is drawn.
        #expect(full.at(budget: 25)?.covered == false && full.at(budget: 35)?.covered == true)
    }
}

@Suite struct SolveOptionsTests {
    static var everyFieldChanged: SolveOptions { .everyFieldChanged }

    @Test func theFixtureChangesEveryField() throws {
        let changed = try JSONSerialization.jsonObject(with: JSONCoding.encoder.encode(Self.everyFieldChanged)) as! [String: Any]
        let defaults = try JSONSerialization.jsonObject(with: JSONCoding.encoder.encode(SolveOptions())) as! [String: Any]
        #expect(Set(changed.keys) == Set(SolveOptions.Field.allCases.map(\.wireName)))
        for key in changed.keys {
            #expect("\(changed[key]!)" != "\(defaults[key]!)", "\(key) is at its default in the fixture")
        }
    }

    @Test func roundTripsThroughTheWire() throws {
        let data = try JSONCoding.encoder.encode(Self.everyFieldChanged)
        #expect(try JSONCoding.decoder.decode(SolveOptions.self, from: data) == Self.everyFieldChanged)
        #expect(try JSONCoding.decoder.decode(SolveOptions.self, from: Data("{}".utf8)) == SolveOptions())
    }

    @Test func unknownAndMistypedFieldsAreRefusedByName() throws {
        #expect { try JSONCoding.decoder.decode(SolveOptions.self, from: Data(#"{"budget_tokenz": 5}"#.utf8)) } throws: {
            "\($0)".contains("unknown field 'budget_tokenz'")
        }
        #expect { try JSONCoding.decoder.decode(SolveOptions.self, from: Data(#"{"k": "four"}"#.utf8)) } throws: {
            guard case DecodingError.typeMismatch(_, let ctx) = $0 else { return false }
            return ctx.codingPath.last?.stringValue == "k"
        }
        #expect { try JSONCoding.decoder.decode(SolveOptions.self, from: Data(#"{"value": "qvn"}"#.utf8)) } throws: {
            "\($0)".contains("zero, logprob, qvm, qvm:PATH")
        }
    }

    @Test func validateNamesTheFieldThatIsOutOfRange() {
        func field(_ change: (inout SolveOptions) -> Void) -> String? {
            var o = SolveOptions()
            change(&o)
            do { try o.validate(); return nil } catch { return error.field }
        }
        #expect(field { _ in } == nil)
        #expect(field { $0.method = "mcts" } == "method")
        #expect(field { $0.search.k = 0 } == "k")
        #expect(field { $0.search.budget.maxGeneratedTokens = 0 } == "budget_tokens")
        #expect(field { $0.search.budget = Budget() } == "budget_tokens")
        #expect(field { $0.search.temperature = -1 } == "temperature")
        #expect(field { $0.stepTokens = 0 } == "step_tokens")
        #expect(field { $0.timeout = .infinity } == "timeout")
        #expect(field { $0.framings = [] } == "framings")
        #expect(field { $0.framings = [.instruct, .instruct] } == "framings")
        // The defaults name two framings and root branching; planners that use neither read what they need.
        #expect(field { $0.method = "greedy" } == nil)
        #expect(field { $0.method = "mctsr" } == nil)
        #expect(field { $0.search.continuations = false } == nil)
        #expect(field { $0.search.select = 3; $0.method = "greedy" } == "select")
        #expect(field { $0.search.select = 3; $0.method = "mctsr" } == "select")
        #expect(field { $0.framings = [.instruct, .examples] } == nil)
        #expect(field { $0.value = ValueChoice(.qvm, path: "/no/such/model.qvm") } == "value")
    }
}

@Suite struct EntryPointResolutionTests {
    @Test func anExplicitEntryPointWinsEverywhere() async throws {
        // The first call in the test is `helper`, but the task says the function is `add`.
        let task = CodeTask(id: "t", text: "Add.", tests: ["assert helper(add(1, 2)) == 3"], entryPoint: "add")
        #expect(task.entry == EntryPoint(name: "add", arity: 2))
        let d = try CodeSearchDomain(task: task, model: NoModel(), verifier: NoVerifier())
        #expect(d.entryPoint?.name == "add")
        let defined = d.apply(CodeAction(line: "def add(a, b):", ends: false), to: d.root)
        #expect(defined.facts.definesEntryPoint && defined.facts.entryPointArityMatches)
        // Without the explicit name the first non-builtin call wins.
        #expect(CodeTask(id: "t", text: "Add.", tests: ["assert helper(add(1, 2)) == 3"]).entry?.name == "helper")
        // Named, but no test calls it: defining it is enough.
        let untested = CodeTask(id: "t", text: "Add.", tests: ["assert True"], entryPoint: "add")
        #expect(untested.entry == EntryPoint(name: "add", arity: nil))
    }
}

@Suite struct ProbeTests {
    @Test func theVisibleCallsPositionalArgumentsAreFound() {
        #expect(Probes.arguments(of: "f", in: "assert f([1, 2], 'a') == 3") == "[1, 2], 'a'")
        #expect(Probes.arguments(of: "f", in: "assert set(f((1, 2))) == {1}") == "(1, 2)")
        #expect(Probes.arguments(of: "f", in: "assert f(x, key=3) == 1") == nil)
        #expect(Probes.arguments(of: "f", in: "assert f(*xs) == 1") == nil)
        #expect(Probes.arguments(of: "f", in: "assert f() == 1") == nil)
        #expect(Probes.arguments(of: "f", in: "assert m.f(1) == 1") == nil)
    }

    /// Two programs that both pass `assert max_of([1, 3, 2]) == 3` but differ
    /// elsewhere: the probes tell them apart; a rewrite of one agrees with it.
    @Test func probesSeparateProgramsTheVisibleTestCannot() async throws {
        let task = CodeTask(id: "m", text: "Maximum of a list.", tests: ["assert max_of([1, 3, 2]) == 3"])
        let d = try CodeSearchDomain(task: task, model: NoModel(), verifier: try Jail())
        func program(_ text: String) -> CodeState { d.apply(CodeAction(line: text, ends: true), to: d.root) }
        let right = program("def max_of(xs):\n    return max(xs)")
        let rewritten = program("def max_of(xs):\n    best = xs[0]\n    for x in xs:\n        best = x if x > best else best\n    return best")
        let wrong = program("def max_of(xs):\n    return xs[1]")
        for p in [right, rewritten, wrong] { #expect(try await d.verify(p).reward == 1) }
        let a = try #require(try await d.behaviour(of: right)), b = try #require(try await d.behaviour(of: rewritten))
        let c = try #require(try await d.behaviour(of: wrong))
        #expect(a.fingerprint == b.fingerprint)
        #expect(a.fingerprint != c.fingerprint)
        #expect(a.cost.verifierRuns == 1)
    }
}

/// MCTSr's conversations with a model that answers by the kind of request:
/// a wrong first program, a critique, a score, and a right rewrite.
@Suite struct SelfRefineTests {
    final class RoleModel: LanguageModel {
        let requests = Mutex<[CompletionRequest]>([])
        func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
            requests.withLock { $0.append(request) }
            let p = request.prompt
            let text: String
            if p.hasSuffix("[Analyst]") {
                text = " It subtracts instead of adding. [Score] -40"
            } else if p.hasSuffix("<|im_start|>assistant\n") {
                text = "The code subtracts; it should add."
            } else if p.contains(PromptBuilder.refineRequest) {
                text = "def add(a, b):\n    return a + b\n"
            } else {
                text = "def add(a, b):\n    return a - b\n"
            }
            let choice = CompletionChoice(text: text, tokenLogprobs: [-0.1], finish: .stop, tokens: 7)
            return CompletionResponse(choices: Array(repeating: choice, count: request.n),
                                      cost: Cost(llmCalls: 1, generatedTokens: 7 * request.n))
        }
    }

    @Test func aWrongProgramIsCriticisedWithTheFailingTestScoredAndRewritten() async throws {
        let model = RoleModel()
        var options = SolveOptions()
        options.method = "mctsr"
        let result = try await Solver(model: model, verifier: ScriptedVerifier()).solve(addTask, options: options, trace: true)
        #expect(result.solved)
        #expect(result.program == "def add(a, b):\n    return a + b\n")
        // The trace holds both judged programs, and its page shows them.
        let trace = try #require(result.trace)
        #expect(trace.compactMap(\.detail) == ["def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n"])
        #expect(trace.last?.action == "refined after the critique: The code subtracts; it should add.")
        let page = TraceRenderer.html(title: "t", subtitle: "s", nodes: trace)
        #expect(page.contains("<details><summary>program</summary><pre>def add(a, b):\n    return a - b\n</pre></details>"))
        let prompts = model.requests.withLock { $0.map(\.prompt) }
        // Greedy answer, its scores, the critique, the rewrite.
        #expect(prompts.count == 4)
        let critique = prompts[2]
        #expect(critique.contains("return a - b\n```<|im_end|>"))
        #expect(critique.contains("The code fails this test:\nassert add(1, 2) == 3\nAssertionError: got 0, expected 3"))
        #expect(critique.contains(PromptBuilder.critiqueRequest))
        #expect(prompts[3].hasPrefix(critique + "The code subtracts; it should add.<|im_end|>"))
        #expect(prompts[3].hasSuffix("```python\n"))
        let scoring = model.requests.withLock { $0[1] }
        #expect(scoring.n == SearchSettings.defaults.rewardSamples)
        #expect(scoring.prompt.contains(PromptBuilder.evaluationRequest))
        #expect(result.statistics.cost.generatedTokens == 7 * (1 + 3 + 1 + 1))
    }

    /// docs/planners.md quotes the prompts word for word.
    @Test func theDocumentedPromptsAreTheOnesSent() throws {
        let page = try String(contentsOf: repoRoot.appendingPathComponent("docs/planners.md"), encoding: .utf8)
        for request in [PromptBuilder.critiqueRequest, PromptBuilder.refineRequest, PromptBuilder.evaluationRequest] {
            let quoted = request.split(separator: "\n", omittingEmptySubsequences: false).map { "> " + $0 }.joined(separator: "\n")
            #expect(page.contains(quoted), "docs/planners.md does not quote: \(request)")
        }
    }

    @Test func aPlainPromptStyleSaysMCTSrNeedsAConversation() async throws {
        var options = SolveOptions()
        options.method = "mctsr"
        let solver = Solver(model: RoleModel(), verifier: ScriptedVerifier(), prompts: PromptBuilder(style: .plain))
        await #expect(throws: UnsupportedByDomain.self) { _ = try await solver.solve(addTask, options: options) }
    }

    @Test(arguments: [
        ("[Analyst] fine [Score] 85", 85.0), ("Score: -30/100", -30), ("a score of 7.5 overall", 7.5),
        ("[Score]: −20", -20), ("Score: 10. Final score: 60", 60), ("Score: + 40", 40),
    ] as [(String, Double)])
    func theScoreIsTheFirstNumberAfterTheLastScore(text: String, score: Double) {
        #expect(PromptBuilder.score(in: text) == score)
    }

    @Test(arguments: ["", "The code looks right.", "[Analyst] 3 flaws. [Score]", "score: none", "Score 100 then Score"])
    func anAnswerWithoutAScoreHasNone(text: String) {
        #expect(PromptBuilder.score(in: text) == nil)
    }
}
