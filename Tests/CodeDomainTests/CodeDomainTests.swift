import Foundation
import Policy
import QStar
import Sandbox
import Synchronization
import Testing
@testable import CodeDomain

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let mbppDir = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data/mbpp")

/// A language model that answers from a script keyed by the code so far.
final class ScriptedModel: LanguageModel {
    /// Code so far (lines joined by "\n") → the choices for the next line.
    let lines: [String: [CompletionChoice]]
    let programs: [CompletionChoice]
    /// Code so far, exactly → the next chunks (token steps).
    let chunks: [String: [CompletionChoice]]
    let prompts = Mutex<[String]>([])

    init(lines: [String: [CompletionChoice]], programs: [CompletionChoice] = [], chunks: [String: [CompletionChoice]] = [:]) {
        self.lines = lines
        self.programs = programs
        self.chunks = chunks
    }

    func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        prompts.withLock { $0.append(request.prompt) }
        let code = request.prompt.components(separatedBy: "```python\n").last ?? ""
        var usage = Usage()
        usage.calls = 1
        let choices: [CompletionChoice]
        if !chunks.isEmpty {
            choices = Array((chunks[code] ?? []).prefix(request.n))
        } else if request.stop == ["\n"] {
            choices = Array((lines[String(code.dropLast(code.hasSuffix("\n") ? 1 : 0))] ?? []).prefix(request.n))
        } else {
            choices = Array(programs.prefix(request.n))
        }
        usage.generatedTokens = choices.reduce(0) { $0 + $1.tokens }
        return CompletionResponse(choices: choices, usage: usage)
    }
}

func line(_ text: String, _ logprob: Double = -0.1, finish: FinishReason = .stop) -> CompletionChoice {
    CompletionChoice(text: text, tokenLogprobs: [logprob, logprob], finish: finish, tokens: 2)
}

/// Records jobs and passes programs containing a marker.
final class ScriptedVerifier: ProgramVerifier {
    let jobs = Mutex<[JailJob]>([])
    func run(_ job: JailJob) async throws -> TestReport {
        jobs.withLock { $0.append(job) }
        let pass = job.program.contains("return a + b")
        let json = #"{"outcome":"\#(pass ? "passed" : "failed")","passed":\#(pass ? 2 : 0),"failed":\#(pass ? 0 : 2),"total":2,"asserts":[],"stdout":"","stderr":"","wallMs":1,"cpuMs":1,"isolation":"namespaces"}"#
        return try JSONDecoder().decode(TestReport.self, from: Data(json.utf8))
    }
}

let addTask = CodeTask(id: "add", text: "Write a function to add two numbers.", tests: ["assert add(1, 2) == 3", "assert add(0, 0) == 0"])

@Suite struct TaskTests {
    @Test func loadsMBPPRecordsWithTheirFields() throws {
        let tasks = try TaskLoader.mbppFile(mbppDir.appendingPathComponent("validation.jsonl"))
        #expect(tasks.count == 90)
        let first = try #require(tasks.first)
        #expect(first.id == "511")
        #expect(first.tests.count == 3)
        #expect(first.entryPoint == "find_Min_Sum")
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
            #expect(task.entryPoint != nil, "\(dir.lastPathComponent)")
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
        let result = try await QStarSearch(domain: d, value: .logprob, settings: SearchSettings(k: 4)).run()
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
        let d = try CodeSearchDomain(task: addTask, model: model, verifier: verifier, options: StepOptions(stepTokens: 8))
        let result = try await QStarSearch(domain: d, value: .logprob, settings: SearchSettings(k: 2)).run()
        #expect(result.best?.program == "def add(a, b):\n    return a + b\n")
        #expect(result.statistics.expansions == 2)
        // The unfinished line went to the model as is, with no newline added.
        #expect(model.prompts.withLock { $0.last }?.hasSuffix("```python\ndef add(a, b):\n    ret") == true)
        #expect(verifier.jobs.withLock { $0.count } == 1)
    }

    @Test func rolloutsSplitWholeProgramsIntoLines() async throws {
        let model = ScriptedModel(lines: [:], programs: [CompletionChoice(text: "def add(a, b):\n    return a + b\n\n", tokenLogprobs: [-0.1],
                                                                          finish: .stop, tokens: 9)])
        let d = try domain(model)
        let batch = try await d.rollouts(from: d.root, n: 1, temperature: 0, seed: 0)
        let state = try #require(batch.rollouts.first?.state)
        #expect(state.lines == ["def add(a, b):", "    return a + b"])
        #expect(state.finished && state.facts.verdict == .valid)
        #expect(batch.cost.generatedTokens == 9)
    }
}

@Suite struct BenchReportTests {
    @Test func theReportHasTheDocumentedKeysAndResumesFromItsOwnFile() throws {
        var passed = BenchTaskResult.empty(addTask)
        passed.passed = true
        passed.generatedTokens = 40
        passed.llmCalls = 2
        var failed = BenchTaskResult.empty(addTask, error: "server down")
        failed.taskId = "other"
        let report = BenchReport(data: "x.jsonl", method: "qstar", value: "logprob", settings: ["k": "4"], tasks: [passed, failed])
        #expect(report.passAt1 == 0.5)
        let data = try BenchReport.encoder().encode(report)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["pass_at_1", "n_tasks", "generated_tokens", "prompt_tokens", "llm_calls", "wall_s", "tasks"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        let back = try BenchReport.resume(data)
        #expect(back.tasks == report.tasks)
        #expect(back.passAt1 == 0.5 && back.generatedTokens == 40 && back.settings == ["k": "4"])
    }
}
