import CodeDomain
import Foundation
@testable import Policy
import QStar
import Sandbox
import Testing
import TestSupport
@testable import QVM

/// Rollouts of one hand-made task: three programs sharing a first line.
///   A: def f(a, b): / return a + b  → pass
///   B: def f(a, b): / return a - b  → fail
///   C: x = 1                         → fail
func handTree() -> RolloutTree {
    RolloutTree(taskId: "t", rollouts: [
        RolloutRecord(taskId: "t", sample: 0, lines: ["def f(a, b):", "    return a + b"], reward: 1),
        RolloutRecord(taskId: "t", sample: 1, lines: ["def f(a, b):", "    return a - b"], reward: 0),
        RolloutRecord(taskId: "t", sample: 2, lines: ["x = 1"], reward: 0),
    ])
}

func edge(_ tree: RolloutTree, parentLines: [String], line: String?) -> Int {
    tree.edges.firstIndex { tree.nodes[$0.parent].lines == parentLines && $0.line == line }!
}

@Suite struct LabelTests {
    @Test func treeSharesPrefixes() {
        let tree = handTree()
        // Root, "def", "def/+", "def/-", "x": five states; four line edges and three end edges.
        #expect(tree.nodes.count == 5)
        #expect(tree.edges.count == 7)
        #expect(tree.nodes[0].edges.count == 2)
    }

    @Test func rolloutLabelsTakeTheMaxDiscountedReturn() {
        let tree = handTree()
        let y = tree.rolloutLabels(gamma: 0.5)
        // "def f" is followed by two more steps in the passing rollout: 0.5² · 1.
        #expect(y[edge(tree, parentLines: [], line: "def f(a, b):")] == 0.25)
        #expect(y[edge(tree, parentLines: ["def f(a, b):"], line: "    return a + b")] == 0.5)
        #expect(y[edge(tree, parentLines: ["def f(a, b):"], line: "    return a - b")] == 0)
        #expect(y[edge(tree, parentLines: ["def f(a, b):", "    return a + b"], line: nil)] == 1)
        #expect(y[edge(tree, parentLines: [], line: "x = 1")] == 0)
        // γ = 1: the label is whether any rollout through the pair succeeded.
        #expect(tree.rolloutLabels(gamma: 1) == tree.successLabels().map { $0 ? 1 : 0 })
    }

    @Test func trailingWhitespaceDoesNotSplitStates() {
        let tree = RolloutTree(taskId: "t", rollouts: [
            RolloutRecord(taskId: "t", sample: 0, lines: ["def f():  ", "    return 1"], reward: 1),
            RolloutRecord(taskId: "t", sample: 1, lines: ["def f():", "    return 2"], reward: 0),
        ])
        #expect(tree.nodes[0].edges.count == 1)
        #expect(tree.edges[tree.nodes[0].edges[0]].returns.count == 2)
    }

    @Test func fqiOnATableConvergesToTheOptimalValues() {
        let tree = handTree()
        let gamma = 0.9
        var q = [Double](repeating: 0.3, count: tree.edges.count)
        for _ in 0..<5 { q = tree.fqiTargets(gamma: gamma) { q[$0] } }
        // Deterministic transitions: Q*(s, a) is the best discounted return below (s, a).
        let exact = tree.rolloutLabels(gamma: gamma)
        for (a, b) in zip(q, exact) { #expect(abs(a - b) < 1e-12) }
        // One round is not enough from a wrong start: the root's value comes from two levels down.
        let once = tree.fqiTargets(gamma: gamma) { _ in 0.3 }
        #expect(once[edge(tree, parentLines: [], line: "def f(a, b):")] != exact[edge(tree, parentLines: [], line: "def f(a, b):")])
    }

    @Test func aucCountsTiesAsHalf() {
        #expect(auc(scores: [0.1, 0.4, 0.35, 0.8], labels: [false, false, true, true]) == 0.75)
        #expect(auc(scores: [1, 1], labels: [true, false]) == 0.5)
        #expect(auc(scores: [1, 2], labels: [true, true]) == nil)
    }
}

/// A small fixture: programs for an `add` task, good ones passing.
/// `goodLogprob`/`badLogprob`: the policy's per-line log-probability on each side, so a
/// fixture can make the logprob prior rank the pairs backwards.
func fixtureDataset(goodLogprob: Double = -1, badLogprob: Double = -2) throws -> QDataset {
    let task = CodeTask(id: "add", text: "Write a function to add two numbers.", tests: ["assert add(1, 2) == 3"])
    var records: [RolloutRecord] = []
    let good = [["def add(a, b):", "    return a + b"], ["def add(x, y):", "    s = x + y", "    return s"]]
    let bad = [["def add(a):", "    return a"], ["print(3)"], ["def plus(a, b):", "    return a * b"],
               ["def add(a, b):", "    return a - b"]]
    for (i, lines) in good.enumerated() {
        records.append(RolloutRecord(taskId: "add", sample: i, lines: lines, lineLogprobSum: lines.map { _ in goodLogprob },
                                     lineTokens: lines.map { _ in 5 }, reward: 1))
    }
    for (i, lines) in bad.enumerated() {
        records.append(RolloutRecord(taskId: "add", sample: 10 + i, lines: lines, lineLogprobSum: lines.map { _ in badLogprob },
                                     lineTokens: lines.map { _ in 5 }, reward: 0))
    }
    return try QDataset(groups: [("add", records)], tasks: ["add": task], extractor: FeatureExtractor(hashBits: 12))
}

@Suite struct TrainingTests {
    @Test func trainingReducesLoss() throws {
        let data = try fixtureDataset()
        let y = data.rolloutLabels(gamma: 0.95)
        var model = QValueModel(hashBits: 12)
        let before = QTrainer.loss(model, x: data.x, y: y)
        var options = TrainingOptions()
        options.epochs = 30
        var trainer = QTrainer(dimension: model.weights.count, options: options)
        let losses = trainer.train(&model, x: data.x, y: y)
        #expect(losses.last! < before / 4)
        #expect(losses.last! < losses.first!)
        // It ranks the pairs on the winning paths above the others on its training data.
        #expect(auc(scores: data.x.map(model.predict), labels: data.success)! > 0.9)
    }

    @Test func pairwiseTrainingCorrectsAPriorThatRanksBackwards() throws {
        // The policy likes the failing programs better: the untrained model (the logprob prior) ranks wrongly.
        let data = try fixtureDataset(goodLogprob: -2, badLogprob: -0.5)
        let y = data.rolloutLabels(gamma: 0.95)
        var model = QValueModel.logprobPrior(hashBits: 12)
        let before = meanTaskAUC(scores: data.x.map(model.predict), labels: data.success, taskOf: data.taskOf)!.auc
        #expect(before < 0.5)
        var options = TrainingOptions()
        options.epochs = 30
        options.objective = .pairwise
        var trainer = QTrainer(dimension: model.weights.count, options: options)
        let losses = trainer.trainPairwise(&model, x: data.x, y: y, taskOf: data.taskOf)
        #expect(losses.last! < losses.first! / 2)
        #expect(meanTaskAUC(scores: data.x.map(model.predict), labels: data.success, taskOf: data.taskOf)!.auc > 0.9)
    }

    @Test func pairwiseTrainingIgnoresPairsThatDifferOnlyByDiscount() throws {
        // Only successes: labels differ by γ^depth alone, so there is nothing to rank and nothing moves.
        var data = try fixtureDataset()
        let keep = data.success.indices.filter { data.success[$0] }
        data.x = keep.map { data.x[$0] }
        let y = keep.map { data.rolloutLabels(gamma: 0.95)[$0] }
        #expect(Set(y).count > 1)
        var model = QValueModel.logprobPrior(hashBits: 12)
        let weights = model.weights
        var options = TrainingOptions()
        options.objective = .pairwise
        var trainer = QTrainer(dimension: model.weights.count, options: options)
        let losses = trainer.trainPairwise(&model, x: data.x, y: y, taskOf: keep.map { _ in 0 })
        #expect(losses.allSatisfy { $0 == 0 })
        #expect(model.weights == weights)
    }

    @Test func trainingIsDeterministicGivenASeed() throws {
        let data = try fixtureDataset()
        var options = TrainingOptions()
        options.epochs = 3
        let a = trainQVM(data, method: .fqi, gamma: 0.9, rounds: 2, options: options, hashBits: 12)
        let b = trainQVM(data, method: .fqi, gamma: 0.9, rounds: 2, options: options, hashBits: 12)
        #expect(a.weights == b.weights && a.bias == b.bias)
    }

    @Test func featuresAreDeterministicAndSeeTheEntryPoint() throws {
        let task = CodeTask(id: "add", text: "Add two numbers.", tests: ["assert add(1, 2) == 3"])
        let ctx = FeatureContext(task: task)
        let extractor = FeatureExtractor(hashBits: 12)
        let facts = CodeFacts(verdict: .valid, definesEntryPoint: false, entryPointArityMatches: false, indentDepth: 0, lineCount: 0)
        let parent = ParentView(lines: [], facts: facts, path: PathStats())
        func f(_ line: String) -> SparseFeatures {
            extractor.features(ctx, parent: parent, candidate: CandidateView(line: line, ends: false, logprob: (-1, 4)))
        }
        #expect(f("def add(a, b):") == f("def add(a, b):"))
        #expect(f("def add(a, b):") != f("def add(a):"))
        #expect(f("def add(a, b):").indices.allSatisfy { $0 >= 0 && Int($0) < extractor.dimension })
        // The end action carries no line features.
        let end = extractor.features(ctx, parent: parent, candidate: CandidateView(line: nil, ends: true, logprob: nil))
        #expect(end.indices.count < f("def add(a, b):").indices.count)
    }
}

@Suite struct ModelFileTests {
    func trained() throws -> QValueModel {
        let data = try fixtureDataset()
        var options = TrainingOptions()
        options.epochs = 5
        var m = trainQVM(data, method: .rollout, gamma: 0.95, rounds: 1, options: options, hashBits: 12)
        m.metadata = ["method": "rollout"]
        return m
    }

    func temp(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("qvm-test-\(getpid())-\(name)").path
    }

    @Test func roundTripGivesIdenticalPredictions() throws {
        let model = try trained()
        let path = temp("roundtrip.qvm")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try model.save(to: path)
        let loaded = try QValueModel.load(from: path)
        let data = try fixtureDataset()
        #expect(data.x.map(loaded.predict) == data.x.map(model.predict))
        #expect(loaded.metadata == model.metadata)
        // The fingerprint (what a resumed benchmark compares) survives the file and tells models apart.
        #expect(loaded.codeValueModel.fingerprint == model.fingerprint)
        #expect(QValueModel.logprobPrior(hashBits: 12).fingerprint != model.fingerprint)
    }

    @Test func missingFileSaysHowToMakeOne() {
        #expect(throws: QVMError.modelMissing("/nonexistent/x.qvm")) { try QValueModel.load(from: "/nonexistent/x.qvm") }
        #expect(QVMError.modelMissing("m").description.contains("train-qvm"))
    }

    @Test func corruptFilesAreRejected() throws {
        let model = try trained()
        let path = temp("corrupt.qvm")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try model.save(to: path)
        var text = try String(contentsOfFile: path, encoding: .utf8)
        // Flip one weight character: the checksum must catch it.
        let range = text.range(of: "\"weights\":\"")!
        let i = text.index(range.upperBound, offsetBy: 40)
        text.replaceSubrange(i...i, with: text[i] == "A" ? "B" : "A")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: QVMError.modelCorrupt(path, "checksum mismatch")) { try QValueModel.load(from: path) }

        try "not json".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: QVMError.modelCorrupt(path, "not a JSON model file")) { try QValueModel.load(from: path) }

        try #"{"format":"qcode-qvm","version":99}"#.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: QVMError.modelVersion(path, found: 99, expected: QValueModel.formatVersion)) {
            try QValueModel.load(from: path)
        }
    }

    @Test func shippedModelLoadsAndScoresInTheSearch() throws {
        let model = try QValueModel.shipped()
        let task = CodeTask(id: "add", text: "Add two numbers.", tests: ["assert add(1, 2) == 3"])
        let value = model.codeValueModel.make(task)
        let domain = try CodeSearchDomain(task: task, model: NoModel(), verifier: NoVerifier())
        let proposals = [CodeAction(line: "def add(a, b):", ends: false), CodeAction(line: nil, ends: true)].map {
            Proposal(action: $0, logprobMean: -0.2, logprobSum: -1, tokens: 5)
        }
        let q = value.qValues(domain.root, PathStats(), proposals)
        #expect(q.count == 2 && q.allSatisfy { $0 > 0 && $0 < 1 })
        #expect(value.name == "qvm")
    }
}

@Suite struct RolloutFileTests {
    @Test func splitAttributesLogprobsToLines() {
        let choice = CompletionChoice(text: "def f():\n    return 1\n", tokenLogprobs: [-0.5, -0.25, -1, -0.1, -0.2, -0.3],
                                      finish: .stop, tokens: 6,
                                      tokenTexts: ["def", " f():", "\n   ", " return", " 1", "\n"])
        let s = splitCompletion(choice)
        #expect(s.lines == ["def f():", "    return 1"])
        #expect(s.logprobSum == [-0.75, -0.30000000000000004])
        #expect(s.tokens == [2, 2])
    }

    @Test func appendAndResumeSurviveATornLine() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qvm-rollouts-\(getpid()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try RolloutFile.append([RolloutRecord(taskId: "1", sample: 0, lines: ["x = 1"], reward: 0)], to: path)
        let handle = FileHandle(forWritingAtPath: path)!
        handle.seekToEndOfFile()
        handle.write(Data(#"{"task_id":"2","sam"#.utf8))
        handle.closeFile()
        try RolloutFile.append([RolloutRecord(taskId: "3", sample: 0, lines: ["y = 2"], reward: 1)], to: path)
        let groups = try RolloutFile.load(path)
        #expect(groups.map(\.taskId) == ["1", "3"])
        #expect(RolloutFile.completedTasks(path, perTask: 1) == ["1", "3"])
    }
}

@Suite struct PriorTests {
    @Test func untrainedModelScoresAsTheLogprobHeuristic() {
        let task = CodeTask(id: "add", text: "Add two numbers.", tests: ["assert add(1, 2) == 3"])
        let ctx = FeatureContext(task: task)
        let model = QValueModel.logprobPrior(hashBits: 12)
        let facts = CodeFacts(verdict: .incomplete, definesEntryPoint: true, entryPointArityMatches: true, indentDepth: 1, lineCount: 1)
        let path = PathStats(depth: 1, logprobSum: -2, tokens: 8)
        let parent = ParentView(lines: ["def add(a, b):"], facts: facts, path: path)
        for (sum, tokens) in [(-0.5, 4), (-3.0, 6), (-0.1, 10)] {
            let q = model.q(ctx, parent: parent, candidate: CandidateView(line: "    return a + b", ends: false, logprob: (sum, tokens)))
            let heuristic = exp((path.logprobSum + sum) / Double(path.tokens + tokens))
            #expect(abs(q - heuristic) < 1e-5)
        }
    }
}

@Suite struct TokenTextTests {
    @Test func llamaResponsesCarryTokenTexts() throws {
        let body = #"""
        {"content":"x = 1\n","stop_type":"word","tokens_predicted":3,
         "completion_probabilities":[{"token":"x","logprob":-0.5},{"token":" =","logprob":-0.25},{"token":" 1\n","logprob":-1}]}
        """#
        let client = HTTPLanguageModel(baseURL: URL(string: "http://127.0.0.1:1")!)
        let choice = try client.decode(Data(body.utf8), n: 1).choices[0]
        #expect(choice.tokenTexts == ["x", " =", " 1\n"])
        #expect(choice.tokenLogprobs == [-0.5, -0.25, -1])
    }

    @Test func openAIResponsesCarryTokenTexts() throws {
        let body = #"""
        {"choices":[{"index":0,"text":"ab","finish_reason":"stop",
          "logprobs":{"tokens":["a","b"],"token_logprobs":[-0.1,-0.2]}}]}
        """#
        let client = HTTPLanguageModel(baseURL: URL(string: "http://127.0.0.1:1")!,
                                       options: EndpointOptions(flavor: .openai))
        let choice = try client.decode(Data(body.utf8), n: 1).choices[0]
        #expect(choice.tokenTexts == ["a", "b"])
    }
}
