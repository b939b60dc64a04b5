import Basics

/// A way of searching a domain under a budget: Q*'s A*, the baselines, and
/// whatever comes next. Every algorithm runs on the same domain calls and the
/// same cost ledger, so each is measured against the others at equal budget;
/// adding one is one new type and one line in `Planners.all`.
public protocol SearchAlgorithm: Sendable {
    /// The name on the command line, on the wire and in reports (`qstar`).
    var name: String { get }
    /// One line for `--help` and the daemon's capabilities.
    var summary: String { get }
    /// Whether h (the value model) affects the search; reports show it only then.
    var usesValueModel: Bool { get }

    func run<Domain: PlanningDomain>(_ context: SearchContext<Domain>) async throws -> SearchResult<Domain.State>
}

/// Everything one search needs besides the algorithm.
public struct SearchContext<Domain: PlanningDomain>: Sendable {
    public var domain: Domain
    public var value: ValueModel<Domain.State, Domain.Action>
    public var settings: SearchSettings
    public var clock: any SearchClock
    public var progress: (@Sendable (SearchProgress<Domain.State>) -> Void)?

    public init(domain: Domain, value: ValueModel<Domain.State, Domain.Action> = .logprob,
                settings: SearchSettings = SearchSettings(), clock: any SearchClock = SystemClock(),
                progress: (@Sendable (SearchProgress<Domain.State>) -> Void)? = nil) {
        self.domain = domain
        self.value = value
        self.settings = settings
        self.clock = clock
        self.progress = progress
    }
}

/// The algorithms qcode offers, in the order `--help` lists them. The CLI,
/// the daemon and the benchmark all resolve `--method` here.
public enum Planners {
    public static let all: [any SearchAlgorithm] = [AStarSearch(), GreedyDecoding(), BestOfN(), MCTSr()]

    public static var names: [String] { all.map(\.name) }

    public static func named(_ name: String) -> (any SearchAlgorithm)? {
        all.first { $0.name == name }
    }
}

/// One node of the explored tree, kept for traces and for the caller's evidence.
public struct TraceNode: Sendable, Hashable, Codable {
    public var id: Int
    public var parent: Int?
    public var depth: Int
    public var action: String
    public var f: Double
    public var g: Double
    public var h: Double
    public var reward: Double
    public var terminal: Bool
    /// Position in the expansion order (nil: never expanded).
    public var expandedAt: Int?
    public var verification: Verification?
    /// The number of policy samples that proposed this action.
    public var count: Int
    /// Generated tokens spent before the call that produced this node.
    public var tokensBefore: Int
    /// The whole episode at a judged node, in the domain's words (a program),
    /// filled in by whoever renders the trace: the planner only knows states.
    public var detail: String?
    /// At a judged node of a tree search: the node the episode was drawn
    /// from, and the root of the attempt it belongs to when that is not the
    /// search's root (a revision, another framing). Reports use them to tell
    /// fresh starts from continuations of a failed program.
    public var drawnFrom: Int?
    public var attempt: Int?
    /// At a judged node: the mean token log-probability of its whole episode
    /// (how sure the policy was of it), and its behaviour on probe inputs when
    /// the search ran them. Reports keep both, so selection and stopping rules
    /// can be weighed on a run after the fact.
    public var logprob: Double?
    public var behaviour: String?

    public init(id: Int, parent: Int?, depth: Int, action: String, f: Double = 0, g: Double = 0, h: Double = 0,
                reward: Double = 0, terminal: Bool = false, expandedAt: Int? = nil, verification: Verification? = nil,
                count: Int = 1, tokensBefore: Int = 0) {
        self.id = id
        self.parent = parent
        self.depth = depth
        self.action = action
        self.f = f
        self.g = g
        self.h = h
        self.reward = reward
        self.terminal = terminal
        self.expandedAt = expandedAt
        self.verification = verification
        self.count = count
        self.tokensBefore = tokensBefore
    }

    public static let root = TraceNode(id: 0, parent: nil, depth: 0, action: "")
}

public enum StopReason: String, Sendable, Codable {
    case solved, exhausted, expansions, tokens, deadline
}

public struct SearchStatistics: Sendable, Hashable, Codable {
    public var expansions = 0
    public var nodes = 0
    public var duplicates = 0
    /// Finished programs the verifier judged.
    public var terminals = 0
    public var cost = Cost()
    public var wallSeconds = 0.0
    public var stop: StopReason = .exhausted
    public init() {}
}

public struct SearchResult<State: Sendable>: Sendable {
    /// The best terminal state found (most checks passed, then best f); nil when none was reached.
    public var best: State?
    public var bestVerification: Verification?
    public var bestNode: Int?
    public var statistics: SearchStatistics
    public var trace: [TraceNode]
    /// Every LLM call, in order (see `SearchRecorder`).
    public var calls: [LedgerCall]
    /// The answer after each judged program, in order.
    public var answers: [LedgerAnswer]
    /// The state of every judged node, by node id.
    public var judged: [Int: State]

    public init(best: State?, bestVerification: Verification?, bestNode: Int?, statistics: SearchStatistics,
                trace: [TraceNode], calls: [LedgerCall] = [], answers: [LedgerAnswer] = [], judged: [Int: State] = [:]) {
        self.best = best
        self.bestVerification = bestVerification
        self.bestNode = bestNode
        self.statistics = statistics
        self.trace = trace
        self.calls = calls
        self.answers = answers
        self.judged = judged
    }
}

/// What a search reports after each step: enough for a progress bar, the
/// daemon's `$/progress` and an editor's "best so far", without the caller
/// having to watch the verifier.
public struct SearchProgress<State: Sendable>: Sendable {
    public var expansions: Int
    public var generatedTokens: Int
    /// Finished programs judged so far.
    public var programsTried: Int
    /// The highest f on the frontier (Q*); 0 for algorithms without one.
    public var bestF: Double
    /// The best finished program so far and its verdict.
    public var best: State?
    public var bestVerification: Verification?
    public var bestNode: Int?

    public init(expansions: Int, generatedTokens: Int, programsTried: Int, bestF: Double = 0, best: State? = nil,
                bestVerification: Verification? = nil, bestNode: Int? = nil) {
        self.expansions = expansions
        self.generatedTokens = generatedTokens
        self.programsTried = programsTried
        self.bestF = bestF
        self.best = best
        self.bestVerification = bestVerification
        self.bestNode = bestNode
    }
}
