import ArgumentParser
import Basics
import CodeDomain
import Foundation
import Policy
import QStar
import Sandbox
import QVM

extension LabelMethod: ExpressibleByArgument {}
extension Objective: ExpressibleByArgument {}

/// Fits the QVM to rollouts and, with --eval, measures how well it ranks
/// state-action pairs against the `logprob` heuristic.
struct TrainQVM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-qvm",
        abstract: "Train the learned Q-value model (QVM) on rollouts from `qcode rollouts`.",
        discussion: """
        Example: qcode train-qvm /work/rollouts/train.jsonl --data ../shared/data/mbpp/train.jsonl --out qvm.qvm \\
                   --eval /work/rollouts/validation.jsonl --eval-data ../shared/data/mbpp/validation.jsonl
        """)

    @Argument(help: "Rollouts JSONL written by `qcode rollouts`.")
    var rollouts: String

    @Option(help: "The MBPP JSONL the rollouts were sampled from (the task text and tests are features).")
    var data: String

    @Option(help: "Write the model here (atomically).")
    var out: String?

    @Option(help: "Labels: rollout (max discounted return over rollouts) or fqi (fitted Q-iteration).")
    var method: LabelMethod = .rollout

    @Option(help: "What training minimises: pointwise (squared error against the labels) or pairwise (ranking pairs of one task, the comparison the search makes).")
    var objective: Objective = .pointwise

    @Option(help: "Discount γ.")
    var gamma: Double = 0.95

    @Option(help: "FQI rounds L.")
    var rounds: Int = 3

    @Option(help: "Training epochs.")
    var epochs: Int = 8

    @Option(help: "Adam learning rate.")
    var learningRate: Double = 0.01

    @Option(help: "L2 penalty on the weights (larger: smoother, less task-specific).")
    var l2: Double = 1e-4

    @Option(help: "Step size of the hashed n-gram weights relative to the dense ones.")
    var sparseRate: Double = 0.3

    @Flag(help: "Also learn the bias (the base rate of success).")
    var trainBias = false

    @Option(help: "Hashed feature space: 2^bits weights.")
    var hashBits: Int = 14

    @Option(help: "Random seed (example order).")
    var seed: UInt64 = 0

    @Option(help: "Held-out rollouts: report the AUC of the QVM and of the logprob heuristic on them.")
    var eval: String?

    @Option(help: "The MBPP JSONL the --eval rollouts were sampled from.")
    var evalData: String?

    @Option(help: "Evaluate this model file instead of training (with --eval).")
    var model: String?

    @Option(help: "Also report out-of-fold AUC: split the training tasks into K folds, train on K-1, score the rest.")
    var folds: Int?

    @Option(help: ArgumentHelp("Benchmark: measure µs per candidate on N real states.", visibility: .hidden))
    var bench: Int?

    func validate() throws {
        guard (8...22).contains(hashBits) else { throw ValidationError("--hash-bits must be between 8 and 22") }
        guard (0...1).contains(gamma) else { throw ValidationError("--gamma must be in [0, 1]") }
        if eval != nil && evalData == nil { throw ValidationError("--eval needs --eval-data, the MBPP file it was sampled from") }
    }

    static func tasks(_ path: String) throws -> [String: CodeTask] {
        Dictionary(try TaskLoader.mbppFile(URL(fileURLWithPath: path)).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    func run() async throws {
        // An --out that cannot be written fails now, not after the training.
        if let out { try AtomicFile.checkWritable(URL(fileURLWithPath: out)) }
        let qvm: QValueModel
        if let model {
            qvm = try QValueModel.load(from: model)
        } else {
            let started = Date()
            let groups = try RolloutFile.load(rollouts)
            let dataset = try QDataset(groups: groups, tasks: try Self.tasks(data), extractor: FeatureExtractor(hashBits: hashBits))
            guard dataset.count > 0 else { throw QVMError.noTrainingData(rollouts) }
            print("training on \(dataset.rollouts) rollouts of \(dataset.trees.count) tasks: \(dataset.count) state-action pairs, "
                  + "\(dataset.success.filter { $0 }.count) on a path to success")
            var options = TrainingOptions()
            options.epochs = epochs
            options.learningRate = Float(learningRate)
            options.seed = seed
            options.l2 = Float(l2)
            options.sparseRate = Float(sparseRate)
            options.trainBias = trainBias
            options.objective = objective
            var trained = trainQVM(dataset, method: method, gamma: gamma, rounds: rounds, options: options,
                                   hashBits: hashBits) { print($0) }
            let seconds = Date().timeIntervalSince(started)
            trained.metadata = [
                "method": method.rawValue, "gamma": String(gamma), "rounds": String(rounds), "epochs": String(epochs),
                "learning_rate": String(learningRate), "l2": String(l2), "sparse_rate": String(sparseRate),
                "objective": objective.rawValue, "seed": String(seed), "rollouts": String(dataset.rollouts),
                "tasks": String(dataset.trees.count), "pairs": String(dataset.count),
                "data": URL(fileURLWithPath: data).lastPathComponent,
            ]
            print(String(format: "trained in %.1f s", seconds))
            if let trainAUC = auc(scores: dataset.x.map(trained.predict), labels: dataset.success) {
                print(String(format: "train AUC: qvm %.3f, logprob %.3f", trainAUC,
                             auc(scores: dataset.logprobScore, labels: dataset.success) ?? .nan))
            }
            if let k = folds, k >= 2 {
                try crossValidate(groups: groups, tasks: try Self.tasks(data), folds: k, options: options)
            }
            if let out {
                try trained.save(to: out)
                print("model written to \(out)")
            }
            qvm = trained
        }
        if let eval, let evalData {
            let dataset = try QDataset(groups: try RolloutFile.load(eval), tasks: try Self.tasks(evalData),
                                       extractor: qvm.extractor)
            guard dataset.count > 0 else { throw QVMError.noTrainingData(eval) }
            let scores = dataset.x.map(qvm.predict)
            let positives = dataset.success.filter { $0 }.count
            print("eval on \(dataset.rollouts) rollouts of \(dataset.trees.count) tasks: \(dataset.count) pairs, \(positives) on a path to success")
            if let a = auc(scores: scores, labels: dataset.success), let b = auc(scores: dataset.logprobScore, labels: dataset.success) {
                print(String(format: "eval AUC: qvm %.3f, logprob %.3f", a, b))
                if let a2 = meanTaskAUC(scores: scores, labels: dataset.success, taskOf: dataset.taskOf),
                   let b2 = meanTaskAUC(scores: dataset.logprobScore, labels: dataset.success, taskOf: dataset.taskOf) {
                    print(String(format: "eval mean within-task AUC (%d tasks with both outcomes): qvm %.3f, logprob %.3f",
                                 a2.tasks, a2.auc, b2.auc))
                }
            } else {
                print("eval AUC undefined: the eval rollouts hold only one outcome")
            }
        }
        if let n = bench { try benchmark(qvm, states: n) }
    }

    /// Out-of-fold scores by task, so every pair is scored by a model that never saw its task.
    func crossValidate(groups: [(taskId: String, records: [RolloutRecord])], tasks: [String: CodeTask], folds k: Int,
                       options: TrainingOptions) throws {
        var qvm: [Double] = [], logprob: [Double] = [], labels: [Bool] = [], taskOf: [Int] = []
        let extractor = FeatureExtractor(hashBits: hashBits)
        for fold in 0..<k {
            let train = groups.enumerated().filter { $0.offset % k != fold }.map(\.element)
            let test = groups.enumerated().filter { $0.offset % k == fold }.map(\.element)
            let trainSet = try QDataset(groups: train, tasks: tasks, extractor: extractor)
            let testSet = try QDataset(groups: test, tasks: tasks, extractor: extractor)
            guard trainSet.count > 0, testSet.count > 0 else { continue }
            let model = trainQVM(trainSet, method: method, gamma: gamma, rounds: rounds, options: options, hashBits: hashBits)
            qvm += testSet.x.map(model.predict)
            logprob += testSet.logprobScore
            labels += testSet.success
            taskOf += testSet.taskOf.map { $0 + 1000 * fold }
        }
        if let a = auc(scores: qvm, labels: labels), let b = auc(scores: logprob, labels: labels) {
            print(String(format: "%d-fold out-of-fold AUC (%d pairs, %d on a path to success): qvm %.3f, logprob %.3f",
                         k, labels.count, labels.filter { $0 }.count, a, b))
            if let a2 = meanTaskAUC(scores: qvm, labels: labels, taskOf: taskOf),
               let b2 = meanTaskAUC(scores: logprob, labels: labels, taskOf: taskOf) {
                print(String(format: "%d-fold mean within-task AUC (%d tasks with both outcomes): qvm %.3f, logprob %.3f",
                             k, a2.tasks, a2.auc, b2.auc))
            }
        } else {
            print("out-of-fold AUC undefined: the folds hold only one outcome")
        }
    }

    /// Median µs per candidate through the search's own entry point
    /// (`CodeValueModel.make(task).qValues`), on prefixes of real rollouts.
    func benchmark(_ qvm: QValueModel, states n: Int) throws {
        let groups = try RolloutFile.load(eval ?? rollouts)
        let tasks = try Self.tasks(eval != nil ? evalData! : data)
        let domainModel = qvm.codeValueModel
        var samples: [Double] = []
        var candidates = 0
        outer: for (taskId, records) in groups {
            guard let task = tasks[taskId]?.visible(1) else { continue }
            let domain = try CodeSearchDomain(task: task, model: NoModel(), verifier: NoVerifier())
            let value = domainModel.make(task)
            for r in records {
                var state = domain.root
                var path = PathStats()
                for line in r.lines {
                    // The K = 4 candidates a search would score here: the real line and three others from the program.
                    let others = r.lines.shuffled().prefix(3)
                    let proposals = ([line] + others).map {
                        Proposal(action: CodeAction(line: $0, ends: false), logprobMean: -0.3, logprobSum: -3, tokens: 10)
                    } + [Proposal(action: CodeAction(line: nil, ends: true), logprobMean: -0.1, logprobSum: -0.1, tokens: 1)]
                    let reps = 20
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    var sink = 0.0
                    for _ in 0..<reps { sink += value.qValues(state, path, proposals).reduce(0, +) }
                    let t1 = DispatchTime.now().uptimeNanoseconds
                    precondition(sink.isFinite)
                    samples.append(Double(t1 - t0) / 1000 / Double(reps * proposals.count))
                    candidates += proposals.count
                    state = domain.apply(CodeAction(line: line, ends: false), to: state)
                    path = path.extended(by: proposals[0])
                    if samples.count >= n { break outer }
                }
            }
        }
        samples.sort()
        guard !samples.isEmpty else { throw UserError("no states to benchmark in the rollouts") }
        let median = samples[samples.count / 2], p90 = samples[samples.count * 9 / 10]
        print(String(format: "QVM evaluation: median %.2f µs per candidate, p90 %.2f µs (%d states, %d candidates each ×20)",
                     median, p90, samples.count, 5))
    }
}

/// Stand-ins so the benchmark can build real `CodeState`s without a server or a jail.
private struct NoModel: LanguageModel {
    func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        CompletionResponse(choices: [], cost: Cost())
    }
}

private struct NoVerifier: ProgramVerifier {
    func run(_ job: JailJob) async throws -> TestReport { throw CancellationError() }
}
