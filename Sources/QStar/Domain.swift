import Basics

/// What a planning domain offers the search. The planner never sees code,
/// HTTP or sockets: a state is opaque, an action is opaque, and every
/// expensive step (the policy, the verifier) is an async call the domain makes.
public protocol PlanningDomain: Sendable {
    associatedtype State: Sendable
    associatedtype Action: Sendable

    var root: State { get }

    /// The policy's top-K next actions (duplicates merged) and what they cost.
    func propose(from state: State, k: Int, seed: UInt64) async throws -> Expansion<Action>

    /// Whole episodes from `state` to a terminal state, sampled at `temperature`
    /// (0: greedy). Baselines run on this; so can rollout-based value estimation.
    func rollouts(from state: State, n: Int, temperature: Double, seed: UInt64) async throws -> RolloutBatch<State>

    func apply(_ action: Action, to state: State) -> State

    /// R_P(s): the hand-made process reward of the newest step.
    func processReward(of state: State) -> Double

    /// True when the policy ended the episode (or a hard limit did).
    func isTerminal(_ state: State) -> Bool

    /// Normalised identity: two states with the same key are the same node.
    func key(of state: State) -> String

    /// The terminal reward: 1 when every visible check passes.
    func verify(_ state: State) async throws -> Verification

    /// One line of text for traces.
    func describe(_ action: Action) -> String
}

public struct Proposal<Action: Sendable>: Sendable {
    public var action: Action
    /// Mean and sum of the policy's token log-probabilities for this action.
    public var logprobMean: Double
    public var logprobSum: Double
    public var tokens: Int
    /// How many of the K samples produced this action.
    public var count: Int

    public init(action: Action, logprobMean: Double, logprobSum: Double, tokens: Int, count: Int = 1) {
        self.action = action
        self.logprobMean = logprobMean
        self.logprobSum = logprobSum
        self.tokens = tokens
        self.count = count
    }
}

public struct Expansion<Action: Sendable>: Sendable {
    public var proposals: [Proposal<Action>]
    public var cost: Cost
    public init(proposals: [Proposal<Action>], cost: Cost) {
        self.proposals = proposals
        self.cost = cost
    }
}

public struct Rollout<State: Sendable>: Sendable {
    public var state: State
    public var logprobMean: Double
    public var tokens: Int
    public init(state: State, logprobMean: Double, tokens: Int) {
        self.state = state
        self.logprobMean = logprobMean
        self.tokens = tokens
    }
}

public struct RolloutBatch<State: Sendable>: Sendable {
    public var rollouts: [Rollout<State>]
    public var cost: Cost
    public init(rollouts: [Rollout<State>], cost: Cost) {
        self.rollouts = rollouts
        self.cost = cost
    }
}

/// The verifier's word on a terminal state.
public struct Verification: Sendable, Hashable, Codable {
    public var passed: Int
    public var total: Int
    /// A short human-readable outcome ("passed", "failed", "timeout", "syntax error" …).
    public var outcome: String
    public var cost: Cost

    public init(passed: Int, total: Int, outcome: String, cost: Cost = Cost()) {
        self.passed = passed
        self.total = total
        self.outcome = outcome
        self.cost = cost
    }

    public var reward: Double { total > 0 && passed == total ? 1 : 0 }
    public var fraction: Double { total == 0 ? 0 : Double(passed) / Double(total) }
}
