/// How g(s) folds the process rewards R_P(s₁) … R_P(s_t) of a path.
public enum Aggregation: String, Sendable, Codable, CaseIterable {
    case min, max, sum, last

    /// Folds one more reward into the running aggregate; `nil` is the empty path.
    public func fold(_ running: Double?, _ reward: Double) -> Double {
        guard let running else { return reward }
        switch self {
        case .min: return Swift.min(running, reward)
        case .max: return Swift.max(running, reward)
        case .sum: return running + reward
        case .last: return reward
        }
    }
}

/// The path so far, as the value model may need it.
public struct PathStats: Sendable, Hashable {
    public var depth: Int
    public var logprobSum: Double
    public var tokens: Int
    public init(depth: Int = 0, logprobSum: Double = 0, tokens: Int = 0) {
        self.depth = depth
        self.logprobSum = logprobSum
        self.tokens = tokens
    }
    public func extended<A>(by p: Proposal<A>) -> PathStats {
        PathStats(depth: depth + 1, logprobSum: logprobSum + p.logprobSum, tokens: tokens + p.tokens)
    }
    public var logprobMean: Double { tokens == 0 ? 0 : logprobSum / Double(tokens) }
}

/// Q̂(s, a) for each of the policy's candidate actions at s. A value model is
/// a function, not a protocol witness, so the search can take the built-in
/// heuristics and a learned model (which needs domain features) alike.
public struct ValueModel<State: Sendable, Action: Sendable>: Sendable {
    public let name: String
    public let qValues: @Sendable (_ state: State, _ path: PathStats, _ proposals: [Proposal<Action>]) -> [Double]

    public init(name: String, qValues: @escaping @Sendable (State, PathStats, [Proposal<Action>]) -> [Double]) {
        self.name = name
        self.qValues = qValues
    }

    /// h = 0: A* degenerates to best-first on g alone.
    public static var zero: ValueModel {
        ValueModel(name: "zero") { _, _, proposals in proposals.map { _ in 0 } }
    }

    /// The policy's own confidence: mean token log-probability along the path
    /// through a, mapped to (0, 1] by exp so it is on the scale of a reward.
    public static var logprob: ValueModel {
        ValueModel(name: "logprob") { _, path, proposals in
            proposals.map { p in
                let extended = path.extended(by: p)
                return extended.tokens == 0 ? 1 : exp(extended.logprobMean)
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
