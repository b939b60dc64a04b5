import ArgumentParser
import Basics
import CodeDomain
import Foundation
import QStar
import QVM

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a method on MBPP-style data: the search sees the first assert, all asserts score.",
        discussion: """
        Resumable: with --out, tasks already in the report are skipped when the experiment is the same \
        (data, model, options, value-model weights); a different one is refused.
        Example: qcode bench ../shared/data/mbpp/validation.jsonl --method qstar --limit 30 --out reports/qstar.json
        """)

    @OptionGroup var selection: MBPPSelection

    @Option(help: "How many asserts the search may see.")
    var visible: Int = 1

    @Option(help: "Write the JSON report here (and resume from it).")
    var out: String?

    @Option(help: "Anytime budgets, e.g. 200,400,800,1600: one run at the largest records, per task, what it would have answered at each (sets --budget-tokens).")
    var budgets: String?

    /// The parsed `--budgets`, ascending.
    func anytimeBudgets() throws -> [Int]? {
        guard let budgets else { return nil }
        let values = budgets.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("--budgets takes positive token counts separated by commas, e.g. 200,400,800,1600")
        }
        let sorted = values.compactMap { $0 }.sorted()
        if let explicit = flags.budgetTokens, explicit != sorted.last {
            throw ValidationError("--budget-tokens \(explicit) disagrees with the largest of --budgets (\(sorted.last!)): give one of them")
        }
        return sorted
    }

    @Flag(help: "Start every task from an empty server cache, all its requests on slot 0, so a task's programs do not depend on the tasks before it (llama.cpp servers; run tasks one at a time per server, and start it with --cache-ram 0).")
    var freshCache = false

    @OptionGroup var flags: SolveFlags
    @OptionGroup var llm: LLMOptions

    func run() async throws {
        let tasks = try selection.tasks()
        var options = try flags.options()
        let anytime = try anytimeBudgets()
        if let largest = anytime?.last { options.search.budget.maxGeneratedTokens = largest }
        // An --out that cannot be written fails now, not after the first task.
        if let out { try AtomicFile.checkWritable(URL(fileURLWithPath: out)) }
        let values = ValueModels()
        let engine = try Engine.make(llm)
        let identity = BenchIdentity(data: URL(fileURLWithPath: selection.data).lastPathComponent, options: options, visible: visible,
                                     valueFingerprint: options.planner.usesValueModel ? try values.resolve(options.value).fingerprint : nil,
                                     model: engine.configuration.llmDescription, freshCache: freshCache)
        var report = BenchReport(identity: identity)
        if let out { report = try BenchReport.resume(out, identity: identity) }
        let done = Set(report.tasks.map(\.taskId))
        let jail = try engine.jail(timeout: options.timeout)
        let bench = Benchmark(solver: Solver(model: engine.model, verifier: jail, values: values), scorer: jail, visible: visible,
                              freshCache: freshCache)
        let bar = ProgressBar()
        try await engine.run(clearing: bar) {
            for (i, task) in tasks.enumerated() where !done.contains(task.id) {
                let passed = report.tasks.filter(\.passed).count
                bar.update("[\(i + 1)/\(tasks.count)] task \(task.id)  pass \(passed)/\(report.tasks.count)")
                var result: BenchTaskResult
                do {
                    result = try await bench.run(task, options: options, anytime: anytime != nil)
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    // One task's failure (a server hiccup) is recorded, not fatal; resuming retries it.
                    result = .empty(task, error: String(describing: error))
                }
                report.tasks.append(result)
                report.recompute()
                if let out { try report.save(to: out) }
            }
        }
        // The file keeps every task ever run with these settings; the table shows this selection.
        let selected = Set(tasks.map(\.id))
        var shown = report
        shown.tasks.removeAll { !selected.contains($0.taskId) }
        shown.recompute()
        print(BenchReport.markdownHeader)
        print(shown.markdownRow)
        if let anytime {
            print("\n| budget | pass@1 | visible pass | oracle coverage | gen tokens/task | s/task |\n|---|---|---|---|---|---|")
            for b in anytime {
                let points = shown.tasks.compactMap { $0.at(budget: b) }
                let n = Double(max(1, points.count))
                func share(_ f: (BenchTaskResult.AtBudget) -> Bool) -> String {
                    String(format: "%.1f%%", 100 * Double(points.filter(f).count) / n)
                }
                print("| \(b) | \(share(\.passed)) | \(share(\.visiblePassed)) | \(share(\.covered)) | "
                      + String(format: "%.0f | %.1f |", Double(points.reduce(0) { $0 + $1.tokens }) / n,
                               points.reduce(0) { $0 + $1.seconds } / n))
            }
        }
        if let rate = shown.challengePassRate { print(String(format: "challenge tests passed: %.1f%%", rate * 100)) }
        let split = shown.wallSplit
        print(String(format: "wall time: %.1f%% waiting for the LLM, %.2f%% for the jail, %.2f%% in qcode itself", 100 * split.llm,
                     100 * split.jail, 100 * split.qcode))
        let errors = shown.tasks.filter { $0.error != nil }
        if !errors.isEmpty { print("\(errors.count) task(s) failed with errors, first: \(errors[0].error!)") }
    }
}
