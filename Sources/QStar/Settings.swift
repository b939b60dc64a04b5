/// Limits on what one search may spend. Any of them ends the search; the best
/// program found so far is returned.
public struct Budget: Sendable, Hashable, Codable {
    public var maxExpansions: Int?
    public var maxGeneratedTokens: Int?
    public var maxSeconds: Double?
    public init(maxExpansions: Int? = nil, maxGeneratedTokens: Int? = nil, maxSeconds: Double? = nil) {
        self.maxExpansions = maxExpansions
        self.maxGeneratedTokens = maxGeneratedTokens
        self.maxSeconds = maxSeconds
    }
}

/// Every knob of every planner, with its one default. Planners read what
/// they need and ignore the rest, so a new knob is one field here (and a flag
/// in the CLI), not a new type per layer.
public struct SearchSettings: Sendable, Hashable, Codable {
    /// Candidate actions per expansion (Q*).
    public var k = 4
    /// Weight λ of the heuristic h in f = g + λ·h (Q*).
    public var lambda = 1.0
    /// How g folds the process rewards of a path (Q*).
    public var aggregation = Aggregation.min
    public var budget = Budget(maxGeneratedTokens: 1500)
    /// The same seed reproduces the search.
    public var seed: UInt64 = 0
    /// Best-of-N: programs to draw at most (the token budget may stop it earlier).
    public var samples = 8
    /// Sampling temperature for candidates and samples.
    public var temperature = 0.8
    /// Episodes longer than this are cut: a guard against a policy that never stops.
    public var maxDepth = 64

    public init() {}

    public static let defaults = SearchSettings()
}

/// Seconds since an arbitrary origin. Injected so deadline budgets are testable.
public protocol SearchClock: Sendable {
    func now() -> Double
}

public struct SystemClock: SearchClock {
    public init() {}
    public func now() -> Double { (ContinuousClock.now - SystemClock.origin).seconds }
    private static let origin = ContinuousClock.now
}

import Basics
