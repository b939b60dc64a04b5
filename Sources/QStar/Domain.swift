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

    /// Whole episodes from `state` to their end, sampled at `temperature` (0:
    /// greedy), each split into the steps `propose` would offer one at a time.
    /// One call samples all `n` (the server shares their prompt), so a search
    /// can add a whole path to its tree for the price of one program's tokens
    /// from `state` on; the last step of each path ends the episode.
    func continuations(from state: State, n: Int, temperature: Double, seed: UInt64) async throws -> Continuations<Action>

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

    /// A fresh start that sees `failed` and what the verifier said about it (a
    /// failing assert's expected and actual values): the policy writes the
    /// episode again from there. Nil when the domain cannot; that is the default.
    func revision(of failed: State, after verification: Verification) -> State?

    /// Other fresh starts of the same problem whose episodes come from another
    /// distribution (for code: the task put to the policy another way), each
    /// with a label for traces. Sampling one distribution harder soon draws
    /// what it drew before; a search may open an attempt under each instead.
    /// None by default.
    func alternatives() -> [(state: State, label: String)]

    /// What a finished episode does beyond the visible checks (its outputs on
    /// probe inputs), as a fingerprint: equal fingerprints behave alike. Nil
    /// when the domain cannot tell; that is the default.
    func behaviour(of state: State) async throws -> Behaviour?

    // Self-refinement (MCTSr): whole episodes are criticised and rewritten.

    /// A placeholder answer ("I don't know") to start from instead of a real one.
    func placeholder() -> State?
    /// A critique of a finished episode, told what the verifier said about it.
    func critique(_ state: State, after verification: Verification?, seed: UInt64) async throws -> Critique
    /// The episode rewritten as the critique suggests.
    func refine(_ state: State, following critique: Critique, seed: UInt64) async throws -> (state: State, cost: Cost)
    /// `n` scores in [-100, 100] the policy gives the episode under strict
    /// rules; nil for an answer that holds no score.
    func selfEvaluate(_ state: State, n: Int, seed: UInt64) async throws -> (scores: [Double?], cost: Cost)
}

/// A critique of an episode, what the critic was told the verifier said (so
/// the rewrite sees the same), and what it cost.
public struct Critique: Sendable, Hashable {
    public var text: String
    public var feedback: String?
    public var cost: Cost
    public init(text: String, feedback: String? = nil, cost: Cost) {
        self.text = text
        self.feedback = feedback
        self.cost = cost
    }
}

/// A planner asked a domain for something it cannot do.
public struct UnsupportedByDomain: Error, Sendable, CustomStringConvertible {
    public var planner: String
    public var capability: String
    public init(planner: String, capability: String) {
        self.planner = planner
        self.capability = capability
    }
    public var description: String { "the \(planner) planner needs a domain that can \(capability); this one cannot" }
}

/// A finished episode's behaviour on probe inputs, and what finding it cost.
public struct Behaviour: Sendable, Hashable {
    public var fingerprint: String
    public var cost: Cost
    public init(fingerprint: String, cost: Cost = Cost()) {
        self.fingerprint = fingerprint
        self.cost = cost
    }
}

extension PlanningDomain {
    /// The behaviour a search answering by agreement (`select` above 1) needs:
    /// that of a program passing every check; nil otherwise, so a search that
    /// answers with its first pass runs no probes.
    func behaviourForSelection(of state: State, _ verification: Verification, select: Int) async throws -> Behaviour? {
        select > 1 && verification.reward == 1 ? try await behaviour(of: state) : nil
    }
}

extension PlanningDomain {
    public func revision(of failed: State, after verification: Verification) -> State? { nil }
    public func alternatives() -> [(state: State, label: String)] { [] }
    public func behaviour(of state: State) async throws -> Behaviour? { nil }
    public func placeholder() -> State? { nil }
    public func critique(_ state: State, after verification: Verification?, seed: UInt64) async throws -> Critique {
        throw UnsupportedByDomain(planner: "mctsr", capability: "criticise an episode")
    }
    public func refine(_ state: State, following critique: Critique, seed: UInt64) async throws -> (state: State, cost: Cost) {
        throw UnsupportedByDomain(planner: "mctsr", capability: "rewrite an episode")
    }
    public func selfEvaluate(_ state: State, n: Int, seed: UInt64) async throws -> (scores: [Double?], cost: Cost) {
        throw UnsupportedByDomain(planner: "mctsr", capability: "score an episode")
    }
}

public struct Proposal<Action: Sendable>: Sendable {
    public var action: Action
    /// Mean and sum of the policy's token log-probabilities for this action.
    public var logprobMean: Double
    public var logprobSum: Double
    public var tokens: Int
    /// How many of the K samples produced this action.
    public var count: Int
    /// Log-probability of the tokens that decide something (for code: the code,
    /// not the comments before it): what says how sure the policy was.
    public var decisionLogprob: Double

    public init(action: Action, logprobMean: Double, logprobSum: Double, tokens: Int, count: Int = 1,
                decisionLogprob: Double? = nil) {
        self.action = action
        self.logprobMean = logprobMean
        self.logprobSum = logprobSum
        self.tokens = tokens
        self.count = count
        self.decisionLogprob = decisionLogprob ?? logprobSum
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

/// Sampled episodes, each a path of steps from the state they started at.
public struct Continuations<Action: Sendable>: Sendable {
    public var paths: [[Proposal<Action>]]
    public var cost: Cost
    public init(paths: [[Proposal<Action>]], cost: Cost) {
        self.paths = paths
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
    /// A graded outcome in [0, 1]: 1 when every check passes, less the further
    /// the episode was from passing (a wrong value beats a crash beats a syntax
    /// error). Searches that learn from outcomes use it instead of 0/1.
    public var credit: Double

    public init(passed: Int, total: Int, outcome: String, cost: Cost = Cost(), credit: Double? = nil) {
        self.passed = passed
        self.total = total
        self.outcome = outcome
        self.cost = cost
        self.credit = credit ?? (total > 0 ? Double(passed) / Double(total) : 0)
    }

    public var reward: Double { total > 0 && passed == total ? 1 : 0 }
    public var fraction: Double { total == 0 ? 0 : Double(passed) / Double(total) }
}
