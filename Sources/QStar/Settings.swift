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

    // Q*'s expansions (each an ablation switch; BENCHMARKS.md measures them).

    /// An expansion samples whole continuations from a node (a path of steps
    /// sharing its prefix) instead of K single next steps.
    public var continuations = true
    /// The first expansion of each attempt is the policy's greedy episode, so
    /// a search costs greedy's tokens when greedy's answer passes.
    public var greedyFirst = true
    /// Continuations per expansion (Q*) or programs per call (best-of-N). A
    /// node can be expanded again when the search comes back to it (partial
    /// expansion), so 1 draws only what is used; more is faster in wall time
    /// (one batch) but coarser under a token budget.
    public var branchSamples = 1
    /// Exponent of the unexplored probability mass at a node in its priority:
    /// branch where the policy was unsure (0: ignore it).
    public var uncertainty = 1.0
    /// μ in h = (1−μ)·v + μ·z: how much verified outcomes z of the episodes
    /// through a node count against the value model's v.
    public var rolloutWeight = 0.5
    /// Exponent β of the expected cost of a new episode from a node (the
    /// tokens of its cheapest known remainder) in its priority: value per token
    /// (0: ignore cost). 0 by default: the cheap draws are the deep ones, and
    /// on MBPP a draw from inside a failed program pays a fifth as often as a
    /// fresh one, so pricing them lower buys the wrong draws.
    public var costWeight = 0.0
    /// How a node's worth of another draw is estimated (see `Branching`);
    /// read by continuations only (K-step expansions value each next step).
    /// `root` by default: the best Q* measured on MBPP validation, +4.1
    /// points over `step` at 800 tokens on three seeds (BENCHMARKS.md).
    public var branching = Branching.root
    /// Episodes that behave like one already judged (same outputs on probe
    /// inputs) count as repeats where they branched off, so the search moves on.
    public var dedup = false
    /// Episodes passing the visible checks to collect before answering: the
    /// answer is the one whose behaviour most of the others share (MBR over
    /// executions). 1: the first that passes, at once.
    public var select = 1
    /// Weight of writing a failed episode again with the verifier's feedback in
    /// view (0: never). Its priority is this times the failure's graded credit.
    public var revise = 0.0

    // MCTSr (Monte Carlo tree self-refine).

    /// Self-evaluation scores sampled per new answer, |R| (0: the tests' graded outcome alone).
    public var rewardSamples = 3
    /// c₀ of the exploration term; scaled by the spread of the Q values seen (see `MCTSr`).
    public var exploration = 1.4
    /// Refinements of one answer before it counts as fully expanded.
    public var maxChildren = 3
    /// Start from a placeholder ("I don't know") instead of the greedy answer.
    public var placeholderRoot = false

    public init() {}

    public static let defaults = SearchSettings()
}

/// What Q* (with continuations) asks of a node when it weighs drawing another
/// episode there: how much of the policy's probability is still untried, and
/// how the verified outcomes of episodes already drawn bear on a new one.
public enum Branching: String, Sendable, Hashable, Codable, CaseIterable {
    /// The mass of the distinct next steps tried at the node; every episode
    /// through the node counts fully in its mean outcome (weight μ against v).
    /// The root's first step is nearly certain, so the root looks spent after
    /// one episode and later episodes branch from the greedy program's prefix.
    case step
    /// The mass of the whole episodes drawn from the node (what sampling
    /// without replacement has left), and outcomes weighted by how likely a
    /// fresh draw from the node is to repeat them: an episode drawn at a deeper
    /// node d counts at an ancestor a with P(a → d), so failures deep in one
    /// program do not condemn a fresh start. Outcomes and the value model's v
    /// are pooled as pseudo-counts (v weighs (1−μ)/μ episodes), so a node whose
    /// episodes keep failing loses its appeal instead of settling at μ·z.
    case episode
    /// As `episode`, but only the root of an attempt (the task under one
    /// framing, a revision) is drawn from again: after each attempt's greedy
    /// program every draw is a fresh start, and the search chooses which start
    /// to draw from by the graded outcomes of the programs drawn there. The
    /// reports' counts are why: on these models a draw continuing a failed
    /// program from inside it passes the visible test a fifth to a half as
    /// often as a fresh one.
    case root

    /// Outcomes pooled by whole episodes (`episode`'s rules).
    var byEpisode: Bool { self != .step }
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
