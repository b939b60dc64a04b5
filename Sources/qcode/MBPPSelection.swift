import ArgumentParser
import CodeDomain
import Foundation

/// Which MBPP tasks a batch command works on: shared by `bench` and `rollouts`.
struct MBPPSelection: ParsableArguments {
    @Argument(help: "An MBPP or HumanEval JSONL file.")
    var data: String

    @Option(help: "Use only the first N tasks (after --offset).")
    var limit: Int?

    @Option(help: "Skip the first N tasks.")
    var offset: Int = 0

    func tasks() throws -> [CodeTask] {
        let all = try TaskLoader.benchmarkFile(URL(fileURLWithPath: data))
        let tasks = Array(all.dropFirst(offset).prefix(limit ?? all.count))
        guard !tasks.isEmpty else { throw ValidationError("no tasks selected from \(data) (offset \(offset), limit \(limit ?? 0))") }
        return tasks
    }
}
