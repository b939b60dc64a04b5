import ArgumentParser
import CodeDomain
import Foundation

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a method on MBPP-style data: the search sees the first assert, all asserts score.",
        discussion: """
        Resumable: with --out, tasks already in the report are skipped when the settings match.
        Example: qcode bench ../shared/data/mbpp/validation.jsonl --method qstar --value logprob --limit 30 --out reports/qstar.json
        """)

    @OptionGroup var selection: MBPPSelection


    @Option(help: "How many asserts the search may see.")
    var visible: Int = 1

    @Option(help: "Write the JSON report here (and resume from it).")
    var out: String?

    @OptionGroup var search: SearchOptions
    @OptionGroup var llm: LLMOptions

    func run() async throws {
        let tasks = try selection.tasks()
        let value = try search.valueModel()
        var settings = [
            "k": String(search.k), "lambda": String(search.lambda), "agg": search.agg.rawValue,
            "budget_tokens": String(search.budgetTokens), "samples": String(search.samples),
            "temperature": String(search.temperature), "seed": String(search.seed), "visible": String(visible),
        ]
        if search.method == .qstar, let fingerprint = value.fingerprint { settings["value_model"] = fingerprint }
        let valueName = search.method == .qstar ? value.name : "-"
        var report = BenchReport(data: selection.data, method: search.method.rawValue, value: valueName, settings: settings, tasks: [])
        if let out, let existing = try? Data(contentsOf: URL(fileURLWithPath: out)) {
            let previous = try BenchReport.resume(existing)
            guard previous.method == report.method, previous.value == report.value, previous.settings == settings else {
                throw UserError("\(out) holds a report with other settings (\(previous.method)/\(previous.value) \(previous.settings)): choose another --out or delete it")
            }
            report.tasks = previous.tasks
            report.recompute()
        }
        // Tasks that ended in an error (a server timeout, say) are run again.
        report.tasks.removeAll { $0.error != nil }
        let done = Set(report.tasks.map(\.taskId))
        let engine = try Engine.make(llm, timeout: search.timeout)
        let bench = Benchmark(solver: Solver(model: engine.model, verifier: engine.jail), scorer: engine.jail, visible: visible)
        let bar = ProgressBar()
        try await engine.run(clearing: bar) {
            for (i, task) in tasks.enumerated() where !done.contains(task.id) {
                let passed = report.tasks.filter(\.passed).count
                bar.update("[\(i + 1)/\(tasks.count)] task \(task.id)  pass \(passed)/\(report.tasks.count)")
                var result: BenchTaskResult
                do {
                    result = try await bench.run(task, options: search.solveOptions, value: value)
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    // One task's failure (a server hiccup) is recorded, not fatal.
                    result = .empty(task, error: String(describing: error))
                }
                report.tasks.append(result)
                report.recompute()
                if let out { try save(report, to: out) }
            }
        }
        // The file keeps every task ever run with these settings; the table shows this selection.
        let selected = Set(tasks.map(\.id))
        var shown = report
        shown.tasks.removeAll { !selected.contains($0.taskId) }
        shown.recompute()
        print(BenchReport.markdownHeader)
        print(shown.markdownRow)
        if let rate = shown.challengePassRate { print(String(format: "challenge tests passed: %.1f%%", rate * 100)) }
        let errors = shown.tasks.filter { $0.error != nil }
        if !errors.isEmpty { print("\(errors.count) task(s) failed with errors, first: \(errors[0].error!)") }
    }

    func save(_ report: BenchReport, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try BenchReport.encoder().encode(report).write(to: url, options: .atomic)
    }
}
