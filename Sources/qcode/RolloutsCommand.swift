import ArgumentParser
import Basics
import CodeDomain
import Foundation

/// Training data for the QVM: programs the policy itself writes, scored on all tests.
struct Rollouts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample programs per task with the policy, run all tests, record every line with its outcome.",
        discussion: """
        Resumable: tasks already complete in --out are skipped; records are appended task by task.
        Example: qcode rollouts ../shared/data/mbpp/train.jsonl --per-task 4 --limit 120 --out /work/rollouts/train.jsonl
        """)

    @OptionGroup var selection: MBPPSelection

    @Option(help: "Programs to sample per task.")
    var perTask: Int = 4

    @Option(help: "Append the rollouts (JSONL) here; resumes from it.")
    var out: String


    @Option(help: "Sampling temperature (the search samples candidates at 0.8).")
    var temperature: Double = 0.8

    @Option(help: "How many asserts the prompt shows (the bench protocol shows 1).")
    var visible: Int = 1

    @Option(help: "Tokens per program at most.")
    var maxProgramTokens: Int = 384

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(help: "Seconds a program may run in the jail.")
    var timeout: Double = 10

    @OptionGroup var llm: LLMOptions

    func validate() throws {
        guard perTask >= 1 else { throw ValidationError("--per-task must be at least 1") }
    }

    func run() async throws {
        let tasks = try selection.tasks()
        let done = RolloutFile.completedTasks(out, perTask: perTask)
        let todo = tasks.filter { !done.contains($0.id) }
        if todo.isEmpty {
            print("all \(tasks.count) tasks already in \(out)")
            return
        }
        // An --out that cannot be written fails now, not after the first task's sampling.
        try RolloutFile.prepare(out)
        let engine = try Engine.make(llm)
        let sampler = RolloutSampler(model: engine.model, verifier: try engine.jail(timeout: timeout), temperature: temperature,
                                     maxProgramTokens: maxProgramTokens, visible: visible)
        let bar = ProgressBar()
        var programs = 0, solved = 0, failures = 0
        let started = Date()
        try await engine.run(clearing: bar) {
            for (i, task) in todo.enumerated() {
                let rate = programs == 0 ? 0 : Double(solved) / Double(programs)
                bar.update("[\(i + 1 + done.count)/\(tasks.count)] task \(task.id)  programs \(programs)  pass \(String(format: "%.0f%%", rate * 100))  \(Int(Date().timeIntervalSince(started))) s")
                let taskSeed = SplitMix64.mix(seed, UInt64(selection.offset + i))
                do {
                    let records = try await sampler.sample(task, n: perTask, seed: taskSeed)
                    try RolloutFile.append(records, to: out)
                    programs += records.count
                    solved += records.filter { $0.reward == 1 }.count
                } catch is CancellationError {
                    throw CancellationError()
                } catch let error as RolloutError {
                    throw error  // the file, not the server: every later task would fail the same way
                } catch {
                    // A server hiccup costs one task, not the run; resuming retries it.
                    failures += 1
                    FileHandle.standardError.write(Data("\ntask \(task.id): \(error)\n".utf8))
                }
            }
        }
        print("\(programs) programs for \(todo.count - failures) tasks appended to \(out); \(solved) pass all tests"
              + (failures > 0 ? "; \(failures) task(s) failed, run again to retry" : ""))
    }
}
