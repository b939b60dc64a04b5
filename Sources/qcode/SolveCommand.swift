import ArgumentParser
import Basics
import CodeDomain
import Daemon
import Foundation
import QStar
import QVM
import RPC

/// Where a task comes from on the command line.
struct TaskOptions: ParsableArguments {
    @Argument(help: "A task file (JSON, see examples/README.md), an MBPP or HumanEval JSONL file (with --task-id), or a Python module (with --function).")
    var task: String?

    @Option(help: "The task_id to take from a JSONL file.")
    var taskId: String?

    @Option(help: "The function stub to fill in the module: its body is empty, `...`, `pass` or `raise NotImplementedError` (`Class.method` for a method).")
    var function: String?

    @Option(help: "The task description, when not using a task file.")
    var prompt: String?

    @Option(help: "A Python test file: asserts (with --prompt), or asserts and pytest-style test functions (with --function; default: the docstring's examples, then test_MODULE.py or tests/test_MODULE.py beside the module).")
    var tests: String?

    @Option(help: "The function the tests call (default: read from the first test).")
    var entryPoint: String?

    @Option(help: "Show the search only the first N tests (default: all).")
    var visible: Int?

    /// A stub task: the module read here, its path and test file made absolute so the
    /// daemon finds the same neighbours.
    var stubRequest: (source: String, file: String, function: String, tests: String?)? {
        get throws {
            guard let function else { return nil }
            guard prompt == nil else { throw ValidationError("--function fills a stub in a module; it does not go with --prompt") }
            guard let path = task else { throw ValidationError("--function needs the module: qcode solve path/to/module.py --function NAME") }
            let url = URL(fileURLWithPath: path)
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw ValidationError("cannot read the module \(path): check the path and its permissions")
            }
            return (String(decoding: data, as: UTF8.self), url.standardizedFileURL.path, function,
                    tests.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
        }
    }

    func load() throws -> CodeTask {
        var task: CodeTask
        if let stub = try stubRequest {
            return try StubTasks.load(source: stub.source, path: stub.file, function: stub.function, testFile: stub.tests)
        }
        if let prompt {
            guard let tests else { throw ValidationError("--prompt needs --tests FILE, a Python file of asserts") }
            task = try TaskLoader.adHoc(text: prompt, testFile: URL(fileURLWithPath: tests), entryPoint: entryPoint)
        } else if let path = self.task {
            let url = URL(fileURLWithPath: path)
            if path.hasSuffix(".jsonl") {
                let all = try TaskLoader.benchmarkFile(url)
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

/// One flag per `SolveOptions` field, shared by `solve` and `bench`. Unset
/// flags keep `SolveOptions`' defaults (shown in the help from the same value).
struct SolveFlags: ParsableArguments {
    static let d = SolveOptions.defaults

    @Option(help: "The planner: \(Planners.all.map { "\($0.name) (\($0.summary))" }.joined(separator: "; ")). Default: \(d.method).")
    var method: String?

    @Option(help: "Value model for h: \(ValueChoice.spellings). Default: \(d.value).")
    var value: String?

    @Option(name: .customShort("k"), help: "Candidate lines per expansion. Default: \(d.search.k).")
    var k: Int?

    @Option(help: "Weight λ of the heuristic h in f = g + λ·h. Default: \(d.search.lambda).")
    var lambda: Double?

    @Option(help: "How g aggregates the process rewards: \(Aggregation.allCases.map(\.rawValue).joined(separator: ", ")). Default: \(d.search.aggregation.rawValue).")
    var agg: Aggregation?

    @Option(help: "Budget: generated tokens per task. Default: \(d.search.budget.maxGeneratedTokens.map(String.init) ?? "none").")
    var budgetTokens: Int?

    @Option(help: "Budget: expansions per task. Default: none.")
    var budgetExpansions: Int?

    @Option(help: "Budget: seconds per task. Default: none.")
    var budgetSeconds: Double?

    @Option(help: "Random seed; the same seed reproduces the search. Default: \(d.search.seed).")
    var seed: UInt64?

    @Option(help: "Best-of-N: programs to sample at most. Default: \(d.search.samples).")
    var samples: Int?

    @Option(help: "Sampling temperature for candidates and samples. Default: \(d.search.temperature).")
    var temperature: Double?

    @Option(help: "Steps in one program at most. Default: \(d.search.maxDepth).")
    var maxDepth: Int?

    @Option(help: "Q*: expansions sample whole continuations (true) or K single lines (false). Default: \(d.search.continuations).")
    var continuations: Bool?

    @Option(help: "Q*: the first expansion of each attempt is the greedy program. Default: \(d.search.greedyFirst).")
    var greedyFirst: Bool?

    @Option(help: "Continuations per Q* expansion (a node may be expanded again), programs per best-of-N call. Default: \(d.search.branchSamples).")
    var branchSamples: Int?

    @Option(help: "Q*: exponent of the probability mass not yet tried at a node in its priority (0: ignore). Default: \(d.search.uncertainty).")
    var uncertainty: Double?

    @Option(help: "Q*: weight μ of verified outcomes against the value model, h = (1−μ)·v + μ·z. Default: \(d.search.rolloutWeight).")
    var rolloutWeight: Double?

    @Option(help: "Q*: exponent β of a node's expected cost (its cheapest remaining episode, in tokens) in its priority (0: ignore cost). Default: \(d.search.costWeight).")
    var costWeight: Double?

    @Option(help: "Q* with continuations: what a node's worth of another draw is judged by: \(Branching.allCases.map(\.rawValue).joined(separator: " or ")) (the mass of untried next steps; of undrawn whole programs; the same, drawing fresh from each start only). Default: \(d.search.branching.rawValue).")
    var branching: Branching?

    @Option(help: "Q*: weight of writing a failed program again with the test's feedback (0: never). Default: \(d.search.revise).")
    var revise: Double?

    @Option(help: "Q*: programs that behave like one already judged (on probe inputs varied from the visible test) count as repeats. Default: \(d.search.dedup).")
    var dedup: Bool?

    @Option(help: "Q* and best-of-N: passing programs to collect before answering with the one whose behaviour most others share (1: the first that passes). Default: \(d.search.select).")
    var select: Int?

    @Option(help: "MCTSr: self-evaluation scores sampled per new program (0: the tests' graded outcome alone). Default: \(d.search.rewardSamples).")
    var rewardSamples: Int?

    @Option(help: "MCTSr: exploration constant c₀ of UCT, scaled by the spread of the values seen. Default: \(d.search.exploration).")
    var exploration: Double?

    @Option(help: "MCTSr: refinements of one program before it counts as fully expanded. Default: \(d.search.maxChildren).")
    var maxChildren: Int?

    @Option(help: "MCTSr: start from a placeholder answer (\"I don't know\") instead of the greedy program. Default: \(d.search.placeholderRoot).")
    var placeholderRoot: Bool?

    @Option(help: "What a step is: \(StepShape.allCases.map(\.rawValue).joined(separator: " or ")) (a code line with the comments before it). Default: \(d.steps.rawValue).")
    var steps: StepShape?

    @Option(help: "A step is N tokens instead of one line. Default: one line.")
    var stepTokens: Int?

    @Option(help: "Tokens one line may take. Default: \(d.maxLineTokens).")
    var maxLineTokens: Int?

    @Option(help: "Tokens one whole program may take. Default: \(d.maxProgramTokens).")
    var maxProgramTokens: Int?

    @Option(help: "Seconds a program may run in the jail. Default: \(d.timeout).")
    var timeout: Double?

    @Option(help: "How the task is put to the policy, comma-separated from \(Framing.spellings) (worked examples first). Every method starts from the first; Q* with continuations opens an attempt under each of the others, best-of-N takes its calls from them in turn, greedy and MCTSr use the first alone. Default: \(d.framings.map(\.rawValue).joined(separator: ",")).")
    var framings: String?

    /// The options these flags give, validated by the same `validate()` the daemon calls.
    func options() throws -> SolveOptions {
        var o = SolveOptions()
        if let method { o.method = method }
        if let value {
            do { o.value = try ValueChoice(parsing: value) } catch { throw ValidationError(Self.flagMessage(error)) }
        }
        if let k { o.search.k = k }
        if let lambda { o.search.lambda = lambda }
        if let agg { o.search.aggregation = agg }
        if let budgetTokens { o.search.budget.maxGeneratedTokens = budgetTokens }
        if let budgetExpansions { o.search.budget.maxExpansions = budgetExpansions }
        if let budgetSeconds { o.search.budget.maxSeconds = budgetSeconds }
        if let seed { o.search.seed = seed }
        if let samples { o.search.samples = samples }
        if let temperature { o.search.temperature = temperature }
        if let maxDepth { o.search.maxDepth = maxDepth }
        if let continuations { o.search.continuations = continuations }
        if let greedyFirst { o.search.greedyFirst = greedyFirst }
        if let branchSamples { o.search.branchSamples = branchSamples }
        if let uncertainty { o.search.uncertainty = uncertainty }
        if let rolloutWeight { o.search.rolloutWeight = rolloutWeight }
        if let costWeight { o.search.costWeight = costWeight }
        if let branching { o.search.branching = branching }
        if let revise { o.search.revise = revise }
        if let dedup { o.search.dedup = dedup }
        if let select { o.search.select = select }
        if let rewardSamples { o.search.rewardSamples = rewardSamples }
        if let exploration { o.search.exploration = exploration }
        if let maxChildren { o.search.maxChildren = maxChildren }
        if let placeholderRoot { o.search.placeholderRoot = placeholderRoot }
        if let steps { o.steps = steps }
        if let stepTokens { o.stepTokens = stepTokens }
        if let maxLineTokens { o.maxLineTokens = maxLineTokens }
        if let maxProgramTokens { o.maxProgramTokens = maxProgramTokens }
        if let timeout { o.timeout = timeout }
        if let framings {
            do { o.framings = try Framing.list(parsing: framings) } catch { throw ValidationError(Self.flagMessage(error)) }
        }
        do { try o.validate() } catch { throw ValidationError(Self.flagMessage(error)) }
        return o
    }

    /// The flag that sets a wire field (`budget_tokens` → `--budget-tokens`).
    static func flag(for field: String) -> String {
        field == "k" ? "-k" : "--" + field.replacingOccurrences(of: "_", with: "-")
    }

    static func flagMessage(_ e: OptionError) -> String { "\(flag(for: e.field)) \(e.message)" }
}

extension Aggregation: ExpressibleByArgument {}
extension StepShape: ExpressibleByArgument {}
extension Branching: ExpressibleByArgument {}

struct Solve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a program for a task by search, and test it.",
        discussion: """
            Exit status: 0 the program passes the visible tests (or, with --function and no tests found, \
            a program was written, marked UNVERIFIED), 1 it does not (or no program), 2 an error.
            Example: qcode solve examples/slugs/slugs.py --function slugify
            """)

    @OptionGroup var taskOptions: TaskOptions
    @OptionGroup var flags: SolveFlags
    @OptionGroup var llm: LLMOptions

    @Flag(help: "Print JSON: the program, its evidence and the search statistics.")
    var json = false

    @Option(help: "Write the explored tree as an HTML page.")
    var trace: String?

    @Flag(help: "With --function: write the new body into the module (only when it passes its tests, or when there are none).")
    var write = false

    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        if write && taskOptions.function == nil { throw ValidationError("--write needs --function: it writes a stub's new body into its module") }
    }

    func run() async throws {
        let task = try taskOptions.load()
        let options = try flags.options()
        if let trace { try AtomicFile.checkWritable(URL(fileURLWithPath: trace)) }
        let bar = ProgressBar(enabled: !json)
        let result = daemon.noDaemon ? try await solveHere(task, options, bar) : try await solveInDaemon(task, options, bar)
        if let trace, let nodes = result.trace {
            let html = TraceRenderer.html(title: "qcode trace: \(task.id)", subtitle: task.text, nodes: nodes)
            try AtomicFile.write(Data(html.utf8), to: URL(fileURLWithPath: trace))
        }
        if json {
            var shown = result
            shown.trace = nil
            print(try JSONCoding.string(shown, pretty: true))
        } else {
            let answer = result.function ?? result.program ?? "# no complete program within the budget"
            print(answer.hasSuffix("\n") ? String(answer.dropLast()) : answer)
            print(result.summaryLine)
            if task.stub != nil || task.suite != nil {
                for a in result.asserts where !a.passed {
                    print("#   ✗ \(a.source.split(separator: "\n").first ?? ""): \([a.exceptionType, a.message].compactMap { $0 }.joined(separator: ": "))")
                }
            }
        }
        if write, let stub = task.stub, let edit = result.edit, result.solved || !result.verified {
            try writeBack(edit, to: stub)
        } else if write {
            FileHandle.standardError.write(Data("qcode solve: \(task.stub?.path ?? "the module") not written: the program does not pass its tests\n".utf8))
        }
        // Without tests, a program is an answer (unverified, and said so); with tests, only a pass is.
        if !(result.solved || (!result.verified && result.program != nil)) { throw ExitCode(1) }
    }

    /// Applies the edit to the module, unless the file changed since it was read.
    private func writeBack(_ edit: TextEdit, to stub: StubContext) throws {
        guard let path = stub.path else { return }
        let now = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        guard now == stub.source else {
            throw UserError("\(path) changed while qcode was solving: not written (run again, or apply the edit from --json)")
        }
        try AtomicFile.write(Data(edit.applied(to: now).utf8), to: URL(fileURLWithPath: path))
    }

    private func solveHere(_ task: CodeTask, _ options: SolveOptions, _ bar: ProgressBar) async throws -> SolveResult {
        let engine = try Engine.make(llm)
        let solver = Solver(model: engine.model, verifier: try engine.jail(timeout: options.timeout), values: ValueModels())
        return try await engine.run(clearing: bar) {
            try await solver.solve(task, options: options, trace: trace != nil) { bar.update($0.line) }
        }
    }

    /// The same solve through the daemon (started if none runs), with the same result.
    private func solveInDaemon(_ task: CodeTask, _ options: SolveOptions, _ bar: ProgressBar) async throws -> SolveResult {
        let client = try await daemon.client(llm, name: "qcode solve")
        defer { client.close() }
        client.onNotification { method, params in
            guard method == Method.progress, let v = params?["value"], v["kind"] == "report",
                  let p = try? v.decode(SolveProgress.self) else { return }
            bar.update(p.line)
        }
        var params = SolveParams(task: TaskSpec(task), options: options, trace: trace != nil)
        if let stub = try taskOptions.stubRequest {
            params = SolveParams(source: stub.source, file: stub.file, function: stub.function, testFile: stub.tests,
                                 options: options, trace: trace != nil)
        }
        defer { bar.clear() }
        return try await daemonRequest(client, Method.solve, try JSONValue.encoding(params)).decode(SolveResult.self)
    }
}
