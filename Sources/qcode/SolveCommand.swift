import ArgumentParser
import CodeDomain
import Daemon
import RPC
import Foundation
import QStar
import QVM

/// Where a task comes from on the command line.
struct TaskOptions: ParsableArguments {
    @Argument(help: "A task file (JSON, see examples/README.md) or an MBPP JSONL file (with --task-id).")
    var task: String?

    @Option(help: "The task_id to take from an MBPP JSONL file.")
    var taskId: String?

    @Option(help: "The task description, when not using a task file.")
    var prompt: String?

    @Option(help: "A Python test file of asserts (with --prompt).")
    var tests: String?

    @Option(help: "The function the tests call (default: read from the first test).")
    var entryPoint: String?

    @Option(help: "Show the search only the first N tests (default: all).")
    var visible: Int?

    func load() throws -> CodeTask {
        var task: CodeTask
        if let prompt {
            guard let tests else { throw ValidationError("--prompt needs --tests FILE, a Python file of asserts") }
            task = try TaskLoader.adHoc(text: prompt, testFile: URL(fileURLWithPath: tests), entryPoint: entryPoint)
        } else if let path = self.task {
            let url = URL(fileURLWithPath: path)
            if path.hasSuffix(".jsonl") {
                let all = try TaskLoader.mbppFile(url)
                guard let id = taskId else {
                    throw ValidationError("\(path) holds \(all.count) tasks: choose one with --task-id")
                }
                guard let found = all.first(where: { $0.id == id }) else { throw TaskError.taskNotFound(id, path) }
                task = found
            } else {
                task = try TaskLoader.taskFile(url)
            }
            if let entryPoint { task.entryPoint = entryPoint }
        } else {
            throw ValidationError("give a task file, an MBPP JSONL file with --task-id, or --prompt TEXT --tests FILE")
        }
        if let visible { task = task.visible(visible) }
        return task
    }
}

/// Search settings shared by `solve` and `bench`.
struct SearchOptions: ParsableArguments {
    @Option(help: "qstar, greedy or best-of-n.")
    var method: SolveMethod = .qstar

    @Option(name: .customShort("k"), help: "Candidate lines per expansion.")
    var k: Int = 4

    @Option(help: "Weight λ of the heuristic h in f = g + λ·h.")
    var lambda: Double = 1

    @Option(help: "How g aggregates the process rewards: min, max, sum or last.")
    var agg: Aggregation = .min

    @Option(help: "Value model for h: zero, logprob, qvm (the shipped learned model) or qvm:MODEL (a file from `qcode train-qvm`).")
    var value: String = "logprob"

    @Option(help: "Budget: generated tokens per task.")
    var budgetTokens: Int = 1500

    @Option(help: "Budget: expansions per task.")
    var budgetExpansions: Int?

    @Option(help: "Budget: seconds per task.")
    var budgetSeconds: Double?

    @Option(help: "Best-of-N: programs to sample at most.")
    var samples: Int = 8

    @Option(help: "Sampling temperature for candidates and best-of-N.")
    var temperature: Double = 0.8

    @Option(help: "A step is N tokens instead of one line.")
    var stepTokens: Int?

    @Option(help: "Random seed; the same seed reproduces the search.")
    var seed: UInt64 = 0

    @Option(help: "Seconds a program may run in the jail.")
    var timeout: Double = 10

    func validate() throws {
        guard k >= 1 else { throw ValidationError("-k must be at least 1") }
        guard budgetTokens > 0 else { throw ValidationError("--budget-tokens must be positive") }
        if let stepTokens, stepTokens < 1 { throw ValidationError("--step-tokens must be at least 1") }
    }

    var solveOptions: SolveOptions {
        var o = SolveOptions()
        o.method = method
        o.k = k
        o.lambda = lambda
        o.aggregation = agg
        o.budget = Budget(maxExpansions: budgetExpansions, maxGeneratedTokens: budgetTokens, maxSeconds: budgetSeconds)
        o.seed = seed
        o.samples = samples
        o.temperature = temperature
        o.step.stepTokens = stepTokens
        return o
    }

    func valueModel() throws -> CodeValueModel {
        do { return try CodeValueModel.named(value) } catch let error as UnknownValueModel {
            throw ValidationError("--value: \(error)")
        }
    }
}

extension SolveMethod: ExpressibleByArgument {}
extension Aggregation: ExpressibleByArgument {}

struct Solve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a program for a task by search, and test it.")

    @OptionGroup var taskOptions: TaskOptions
    @OptionGroup var search: SearchOptions
    @OptionGroup var llm: LLMOptions

    @Flag(help: "Print JSON with search statistics.")
    var json = false

    @Option(help: "Write the explored tree as an HTML page.")
    var trace: String?

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        let task = try taskOptions.load()
        let value = try search.valueModel()
        // The daemon does not send the explored tree back, so --trace solves in-process.
        guard daemon.noDaemon || trace != nil else {
            return try await runInDaemon(task)
        }
        let engine = try Engine.make(llm, timeout: search.timeout)
        let solver = Solver(model: engine.model, verifier: engine.jail)
        let bar = ProgressBar(enabled: !json)
        let outcome = try await engine.run(clearing: bar) {
            try await solver.solve(task, options: search.solveOptions, value: value) { p in
                bar.update("expansions \(p.expansions)  tokens \(p.generatedTokens)  best f \(String(format: "%.3f", p.bestF))")
            }
        }
        if let trace {
            try TraceRenderer.html(title: "qcode trace: \(task.id)", subtitle: task.text, nodes: outcome.trace)
                .write(toFile: trace, atomically: true, encoding: .utf8)
        }
        if json {
            print(try SolveReport(task: task, outcome: outcome).jsonString())
        } else {
            print(outcome.program ?? "# no complete program within the budget")
            print(SolveReport(task: task, outcome: outcome).summaryLine)
        }
        if outcome.verification?.reward != 1 { throw ExitCode(1) }
    }

    /// The same solve through the daemon (started if none runs), with the same output.
    private func runInDaemon(_ task: CodeTask) async throws {
        let client = try await daemon.client(llm, name: "qcode solve")
        defer { client.close() }
        let bar = ProgressBar(enabled: !json)
        client.onNotification { method, params in
            guard method == "$/progress", let v = params?["value"], v["kind"] == "report",
                  let p = try? v.decode(SolveProgress.self) else { return }
            bar.update("expansions \(p.expansions)  tokens \(p.generatedTokens)  best f \(String(format: "%.3f", p.bestF))")
        }
        let params = SolveParams(task: TaskSpec(task), method: search.method.rawValue, options: search.wireSettings)
        let value: JSONValue
        do {
            value = try await daemonRequest(client, "qcode/solve", try JSONValue.encoding(params))
        } catch {
            bar.clear()
            throw error
        }
        bar.clear()
        let report = SolveReport(try value.decode(SolveResult.self))
        if json {
            print(try report.jsonString())
        } else {
            print(report.program ?? "# no complete program within the budget")
            print(report.summaryLine)
        }
        if !(report.total > 0 && report.passed == report.total) { throw ExitCode(1) }
    }
}

/// The JSON shape of a solve (also the daemon's `qcode/solve` result).
struct SolveReport: Encodable {
    var taskId: String
    var method: String
    var value: String
    var program: String?
    var passed: Int
    var total: Int
    var outcome: String
    var statistics: SearchStatistics

    init(task: CodeTask, outcome: SolveOutcome) {
        taskId = task.id
        method = outcome.method.rawValue
        value = outcome.valueModel
        program = outcome.program
        passed = outcome.verification?.passed ?? 0
        total = outcome.verification?.total ?? task.tests.count
        self.outcome = outcome.verification?.outcome ?? "no program"
        statistics = outcome.statistics
    }

    var summaryLine: String {
        let s = statistics
        let mark = passed == total && total > 0 ? "PASS" : "FAIL"
        return "# \(mark) \(passed)/\(total) visible tests (\(outcome)) — \(method)\(value == "-" ? "" : "/\(value)"): "
            + "\(s.expansions) expansions, \(s.cost.llmCalls) LLM calls, \(s.cost.generatedTokens) generated tokens, "
            + String(format: "%.1f s", s.wallSeconds)
    }

    func jsonString() throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
