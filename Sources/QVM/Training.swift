import Basics
import CodeDomain
import Foundation
import PythonSyntax
import QStar

/// Every (state, action) pair of a set of rollout trees, with its features
/// and what the evaluation needs (eventual success, the logprob heuristic).
public struct QDataset: Sendable {
    public var trees: [RolloutTree] = []
    /// Features of each pair, trees' edges in order.
    public var x: [SparseFeatures] = []
    /// Offset of each tree's first edge in `x`.
    public var offsets: [Int] = []
    public var success: [Bool] = []
    /// The `logprob` heuristic's score of each pair, as the search computes it.
    public var logprobScore: [Double] = []
    public var rollouts = 0

    public var count: Int { x.count }

    /// Which tree (task) each pair belongs to.
    public var taskOf: [Int] {
        trees.indices.flatMap { t in Array(repeating: t, count: trees[t].edges.count) }
    }

    /// Builds the trees and re-parses each prefix once (incrementally from
    /// its parent) for the syntax facts the search would have.
    public init(groups: [(taskId: String, records: [RolloutRecord])], tasks: [String: CodeTask],
                extractor: FeatureExtractor) throws {
        let parser = try PythonParser()
        for (taskId, records) in groups {
            guard let full = tasks[taskId] else { continue }
            let task = full.visible(records.first?.visible ?? 1)
            let ctx = FeatureContext(task: task)
            let tree = RolloutTree(taskId: taskId, rollouts: records)
            rollouts += records.count
            offsets.append(x.count)
            var parsed = [ParsedProgram?](repeating: nil, count: tree.nodes.count)
            var paths = [PathStats](repeating: PathStats(), count: tree.nodes.count)
            parsed[0] = parser.parse("")
            for e in tree.edges {
                let parentParse = parsed[e.parent]!
                let facts = codeFacts(parentParse, entryPoint: ctx.entryPoint)
                let parent = ParentView(lines: tree.nodes[e.parent].lines, facts: facts, path: paths[e.parent])
                let candidate = CandidateView(line: e.line, ends: e.line == nil, logprob: e.logprob)
                x.append(extractor.features(ctx, parent: parent, candidate: candidate))
                success.append(e.returns.contains { $0.reward == 1 })
                var extended = paths[e.parent]
                if let lp = e.logprob {
                    extended.logprobSum += lp.sum
                    extended.tokens += lp.tokens
                }
                extended.depth += 1
                logprobScore.append(extended.tokens == 0 ? 1 : exp(extended.logprobMean))
                if let child = e.child, let line = e.line {
                    parsed[child] = parser.extend(parentParse, appending: line + "\n")
                    paths[child] = extended
                }
            }
            trees.append(tree)
        }
    }

    public func rolloutLabels(gamma: Double) -> [Double] { trees.flatMap { $0.rolloutLabels(gamma: gamma) } }

    public func fqiTargets(gamma: Double, model: QValueModel) -> [Double] {
        var out: [Double] = []
        out.reserveCapacity(count)
        for (t, tree) in trees.enumerated() {
            let base = offsets[t]
            out += tree.fqiTargets(gamma: gamma) { e in model.predict(x[base + e]) }
        }
        return out
    }
}

public struct TrainingOptions: Sendable {
    public var epochs = 8
    public var learningRate: Float = 0.01
    public var l2: Float = 1e-5
    public var seed: UInt64 = 0
    /// Step size of the hashed (sparse) weights relative to the dense ones: the
    /// n-grams are what can memorise a task, so on little data they move slowly.
    public var sparseRate: Float = 0.3
    /// Learn the bias. Off by default: with few tasks the base rate of the
    /// training tasks says nothing about a new one, and the prior is calibrated already.
    public var trainBias = false
    public var objective: Objective = .pointwise
    /// Pairwise: lower-labelled partners drawn per pair with a higher label, each epoch.
    public var partnersPerPair = 4
    public init() {}
}

/// What training minimises.
public enum Objective: String, Sendable, CaseIterable {
    /// Squared error of Q̂ against the label: calibrated values, but most of the
    /// error is how hard each task is, which the search never needs to know.
    case pointwise
    /// Logistic loss on Q̂'s logit differences between pairs of one task with
    /// different labels: only the ranking the search uses (it compares
    /// candidates of one task), with the logprob prior keeping the scale.
    case pairwise
}

/// Minimises mean squared error of sigmoid(w·x) against the targets by Adam,
/// one example at a time in a seeded order. Adam's moments are updated only
/// on the active coordinates (lazy sparse Adam), so an epoch is O(nnz).
public struct QTrainer {
    public var options: TrainingOptions
    var m: [Float], v: [Float]
    var mb: Float = 0, vb: Float = 0
    var step = 0
    var rng: SplitMix64

    public init(dimension: Int, options: TrainingOptions) {
        self.options = options
        m = [Float](repeating: 0, count: dimension)
        v = [Float](repeating: 0, count: dimension)
        rng = SplitMix64(seed: options.seed)
    }

    public static func loss(_ model: QValueModel, x: [SparseFeatures], y: [Double]) -> Double {
        guard !x.isEmpty else { return 0 }
        var total = 0.0
        for i in x.indices {
            let d = model.predict(x[i]) - y[i]
            total += d * d
        }
        return total / Double(x.count)
    }

    static let b1: Float = 0.9, b2: Float = 0.999, eps: Float = 1e-8

    /// Adam's bias-corrected step size for the next update.
    mutating func nextStepSize() -> Float {
        step += 1
        let c1 = 1 - pow(Self.b1, Float(step)), c2 = 1 - pow(Self.b2, Float(step))
        return options.learningRate * c2.squareRoot() / c1
    }

    /// One lazy Adam update of weight j. L2 pulls the prior's weight towards 1 (the
    /// logprob heuristic) and every other towards 0; n-gram weights move at the sparse rate.
    @inline(__always)
    mutating func update(_ model: inout QValueModel, _ j: Int, gradient: Float, stepSize a: Float) {
        let anchor: Float = j == FeatureExtractor.priorSlot ? 1 : 0
        let gj = gradient + options.l2 * (model.weights[j] - anchor)
        m[j] = Self.b1 * m[j] + (1 - Self.b1) * gj
        v[j] = Self.b2 * v[j] + (1 - Self.b2) * gj * gj
        model.weights[j] -= (j < FeatureExtractor.denseSlots ? a : a * options.sparseRate) * m[j] / (v[j].squareRoot() + Self.eps)
    }

    /// Runs the configured epochs; returns the loss over the data after each.
    public mutating func train(_ model: inout QValueModel, x: [SparseFeatures], y: [Double],
                               epochs: Int? = nil, report: ((Int, Double) -> Void)? = nil) -> [Double] {
        var losses: [Double] = []
        var order = Array(x.indices)
        for epoch in 0..<(epochs ?? options.epochs) {
            order.shuffle(using: &rng)
            for i in order {
                let xi = x[i]
                let p = Float(model.predict(xi))
                let g = 2 * (p - Float(y[i])) * p * (1 - p)
                let a = nextStepSize()
                mb = Self.b1 * mb + (1 - Self.b1) * g
                vb = Self.b2 * vb + (1 - Self.b2) * g * g
                if options.trainBias { model.bias -= a * mb / (vb.squareRoot() + Self.eps) }
                for k in 0..<xi.indices.count { update(&model, Int(xi.indices[k]), gradient: g * xi.values[k], stepSize: a) }
            }
            let l = Self.loss(model, x: x, y: y)
            losses.append(l)
            report?(epoch + 1, l)
        }
        return losses
    }

    /// Within-task ranking: for each pair (i, j) of one task with y_j ≤ y_i / 2,
    /// minimises log(1 + exp(-(z_i - z_j))) over the logits z, by the same lazy sparse Adam.
    public mutating func trainPairwise(_ model: inout QValueModel, x: [SparseFeatures], y: [Double], taskOf: [Int],
                                       epochs: Int? = nil, report: ((Int, Double) -> Void)? = nil) -> [Double] {
        var byTask: [Int: [Int]] = [:]
        for i in x.indices { byTask[taskOf[i], default: []].append(i) }
        let groups = byTask.keys.sorted().map { byTask[$0]! }
        var losses: [Double] = []
        var grad: [Int: Float] = [:]
        for epoch in 0..<(epochs ?? options.epochs) {
            var pairs: [(Int, Int)] = []
            for members in groups {
                for i in members {
                    // At most half the label: two successes differ by γ^depth, and ranking
                    // them would teach depth, not success.
                    let lower = members.filter { y[$0] <= y[i] / 2 }
                    guard !lower.isEmpty else { continue }
                    for _ in 0..<min(options.partnersPerPair, lower.count) {
                        pairs.append((i, lower[Int.random(in: 0..<lower.count, using: &rng)]))
                    }
                }
            }
            pairs.shuffle(using: &rng)
            var total = 0.0
            for (i, j) in pairs {
                let margin = model.logit(x[i]) - model.logit(x[j])
                total += Double(log1p(exp(-margin)))
                let g = -1 / (1 + exp(margin))  // d loss / d margin
                grad.removeAll(keepingCapacity: true)
                for k in 0..<x[i].indices.count { grad[Int(x[i].indices[k]), default: 0] += g * x[i].values[k] }
                for k in 0..<x[j].indices.count { grad[Int(x[j].indices[k]), default: 0] -= g * x[j].values[k] }
                let a = nextStepSize()
                for (j, raw) in grad { update(&model, j, gradient: raw, stepSize: a) }
            }
            let l = pairs.isEmpty ? 0 : total / Double(pairs.count)
            losses.append(l)
            report?(epoch + 1, l)
        }
        return losses
    }
}

public enum LabelMethod: String, Sendable, CaseIterable {
    case rollout, fqi
}

/// The whole recipe `train-qvm` runs: rollout labels; for FQI, then L rounds
/// of re-labelling with the current model and training on the new targets.
public func trainQVM(_ data: QDataset, method: LabelMethod, gamma: Double, rounds: Int, options: TrainingOptions,
                     hashBits: Int = 14, log: @escaping (String) -> Void = { _ in }) -> QValueModel {
    var model = QValueModel.logprobPrior(hashBits: hashBits)
    var trainer = QTrainer(dimension: model.weights.count, options: options)
    let labels = data.rolloutLabels(gamma: gamma)
    log("rollout labels: \(data.count) pairs, mean \(String(format: "%.3f", labels.reduce(0, +) / Double(max(1, labels.count))))")
    let taskOf = data.taskOf
    func fit(_ y: [Double], epochs: Int?, _ label: String) {
        let report = { (e: Int, l: Double) in log("\(label)epoch \(e): loss \(String(format: "%.5f", l))") }
        switch options.objective {
        case .pointwise: _ = trainer.train(&model, x: data.x, y: y, epochs: epochs, report: report)
        case .pairwise: _ = trainer.trainPairwise(&model, x: data.x, y: y, taskOf: taskOf, epochs: epochs, report: report)
        }
    }
    fit(labels, epochs: nil, "")
    if method == .fqi {
        for round in 1...max(1, rounds) {
            fit(data.fqiTargets(gamma: gamma, model: model), epochs: max(1, options.epochs / 2), "fqi round \(round) ")
        }
    }
    return model
}
