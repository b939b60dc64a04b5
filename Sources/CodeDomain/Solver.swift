import Foundation
import Policy
import QStar
import Sandbox

public enum SolveMethod: String, Sendable, Codable, CaseIterable {
    case qstar
    case greedy
    case bestOfN = "best-of-n"
}

/// Everything that shapes one solve. Defaults are what `qcode solve` uses.
public struct SolveOptions: Sendable, Hashable {
    public var method: SolveMethod = .qstar
    public var k = 4
    public var lambda = 1.0
    public var aggregation: Aggregation = .min
    public var budget = Budget(maxGeneratedTokens: 1500)
    public var seed: UInt64 = 0
    /// Best-of-N: how many programs at most (the token budget may stop it earlier).
    public var samples = 8
    public var temperature = 0.8
    public var step = StepOptions()
    public init() {}
}

/// A value model for code: built per task, since a learned model reads the
/// task (its text, its entry point) as well as the code.
public struct CodeValueModel: Sendable {
    public let name: String
    /// Which trained weights, for models that have them: two QVMs share a name,
    /// and a resumed benchmark must not mix their results.
    public let fingerprint: String?
    public let make: @Sendable (CodeTask) -> ValueModel<CodeState, CodeAction>

    public init(name: String, fingerprint: String? = nil,
                make: @escaping @Sendable (CodeTask) -> ValueModel<CodeState, CodeAction>) {
        self.name = name
        self.fingerprint = fingerprint
        self.make = make
    }

    public static let zero = CodeValueModel(name: "zero") { _ in .zero }
    public static let logprob = CodeValueModel(name: "logprob") { _ in .logprob }
}

/// A solve's answer and its evidence.
public struct SolveOutcome: Sendable {
    public var method: SolveMethod
    public var valueModel: String
    public var program: String?
    public var verification: Verification?
    public var statistics: SearchStatistics
    public var trace: [TraceNode]
}

/// Runs one method on one task: the seam the CLI, the daemon and the
/// benchmark share, so each measures exactly the same thing.
public struct Solver: Sendable {
    public let model: any LanguageModel
    public let verifier: any ProgramVerifier
    public let prompts: PromptBuilder

    public init(model: any LanguageModel, verifier: any ProgramVerifier, prompts: PromptBuilder = PromptBuilder()) {
        self.model = model
        self.verifier = verifier
        self.prompts = prompts
    }

    public func solve(_ task: CodeTask, options: SolveOptions,
                      value: CodeValueModel = .logprob,
                      progress: (@Sendable (SearchProgress) -> Void)? = nil) async throws -> SolveOutcome {
        var step = options.step
        step.temperature = options.temperature
        let domain = try CodeSearchDomain(task: task, model: model, verifier: verifier, prompts: prompts, options: step)
        let result: SearchResult<CodeState>
        switch options.method {
        case .qstar:
            let settings = SearchSettings(k: options.k, lambda: options.lambda, aggregation: options.aggregation,
                                          budget: options.budget, seed: options.seed, maxDepth: step.maxLines)
            result = try await QStarSearch(domain: domain, value: value.make(task), settings: settings).run(progress: progress)
        case .greedy:
            result = try await Sampler(domain: domain).greedy()
        case .bestOfN:
            result = try await Sampler(domain: domain).bestOfN(
                n: options.samples, temperature: options.temperature, seed: options.seed, batch: min(4, options.samples),
                maxGeneratedTokens: options.budget.maxGeneratedTokens)
        }
        return SolveOutcome(method: options.method, valueModel: options.method == .qstar ? value.name : "-",
                            program: result.best?.program, verification: result.bestVerification,
                            statistics: result.statistics, trace: result.trace)
    }
}
