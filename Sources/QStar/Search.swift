import HeapModule

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

/// Seconds since an arbitrary origin. Injected so deadline budgets are testable.
public protocol SearchClock: Sendable {
    func now() -> Double
}

public struct SystemClock: SearchClock {
    public init() {}
    public func now() -> Double {
        let d = ContinuousClock.now - SystemClock.origin
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
    private static let origin = ContinuousClock.now
}

public struct SearchSettings: Sendable, Hashable {
    public var k: Int
    public var lambda: Double
    public var aggregation: Aggregation
    public var budget: Budget
    public var seed: UInt64
    /// Episodes longer than this are cut: a guard against a policy that never stops.
    public var maxDepth: Int

    public init(k: Int = 4, lambda: Double = 1, aggregation: Aggregation = .min, budget: Budget = Budget(),
                seed: UInt64 = 0, maxDepth: Int = 64) {
        self.k = k
        self.lambda = lambda
        self.aggregation = aggregation
        self.budget = budget
        self.seed = seed
        self.maxDepth = maxDepth
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
}

public enum StopReason: String, Sendable, Codable {
    case solved, exhausted, expansions, tokens, deadline
}

public struct SearchStatistics: Sendable, Hashable, Codable {
    public var expansions = 0
    public var nodes = 0
    public var duplicates = 0
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
}

/// Progress reported after each expansion, for progress bars and `$/progress`.
public struct SearchProgress: Sendable {
    public var expansions: Int
    public var bestF: Double
    public var generatedTokens: Int
    public var bestPassed: Int?
    public var bestNode: Int?
}

private struct OpenEntry: Comparable {
    var f: Double
    var sequence: Int
    var node: Int
    // Heap is a min-max heap; pop the max f, ties to the earliest pushed (deterministic).
    static func < (a: OpenEntry, b: OpenEntry) -> Bool {
        a.f != b.f ? a.f < b.f : a.sequence > b.sequence
    }
}

/// Q*: A* over the policy's candidate actions with f(s) = g(s) + λ·h(s).
///
/// h of a child s' = (s, a) is Q̂(s, a): by the Bellman identity with no
/// intermediate reward, the optimal value of s' is what Q̂ estimates for taking
/// a at s, so every child is scored from its parent's one policy call instead
/// of a call of its own.
public struct QStarSearch<Domain: PlanningDomain>: Sendable {
    public let domain: Domain
    public let value: ValueModel<Domain.State, Domain.Action>
    public let settings: SearchSettings
    public let clock: any SearchClock

    public init(domain: Domain, value: ValueModel<Domain.State, Domain.Action>, settings: SearchSettings,
                clock: any SearchClock = SystemClock()) {
        self.domain = domain
        self.value = value
        self.settings = settings
        self.clock = clock
    }

    public func run(progress: (@Sendable (SearchProgress) -> Void)? = nil) async throws -> SearchResult<Domain.State> {
        let started = clock.now()
        var stats = SearchStatistics()
        var states: [Domain.State] = [domain.root]
        var paths: [PathStats] = [PathStats()]
        var gs: [Double?] = [nil]
        var trace: [TraceNode] = [TraceNode(id: 0, parent: nil, depth: 0, action: "", f: 0, g: 0, h: 0, reward: 0,
                                            terminal: false, expandedAt: nil, verification: nil, count: 1)]
        var open = Heap<OpenEntry>()
        var sequence = 0
        open.insert(OpenEntry(f: 0, sequence: sequence, node: 0))
        var visited: Set<String> = [domain.key(of: domain.root)]
        var best: Int?

        func isBetter(_ a: Int, than b: Int?) -> Bool {
            guard let b else { return true }
            let va = trace[a].verification!, vb = trace[b].verification!
            if va.passed != vb.passed { return va.passed > vb.passed }
            return trace[a].f > trace[b].f
        }

        func finish(_ reason: StopReason) -> SearchResult<Domain.State> {
            stats.stop = reason
            stats.nodes = trace.count
            stats.wallSeconds = clock.now() - started
            return SearchResult(best: best.map { states[$0] }, bestVerification: best.flatMap { trace[$0].verification },
                                bestNode: best, statistics: stats, trace: trace)
        }

        while let entry = open.popMax() {
            try Task.checkCancellation()
            if let limit = settings.budget.maxExpansions, stats.expansions >= limit { return finish(.expansions) }
            if let limit = settings.budget.maxGeneratedTokens, stats.cost.generatedTokens >= limit { return finish(.tokens) }
            if let limit = settings.budget.maxSeconds, clock.now() - started >= limit { return finish(.deadline) }

            let parent = entry.node
            trace[parent].expandedAt = stats.expansions
            let seed = Self.mix(settings.seed, UInt64(stats.expansions))
            stats.expansions += 1
            let expansion = try await domain.propose(from: states[parent], k: settings.k, seed: seed)
            stats.cost += expansion.cost
            let qs = value.qValues(states[parent], paths[parent], expansion.proposals)

            for (proposal, q) in zip(expansion.proposals, qs) {
                try Task.checkCancellation()
                let state = domain.apply(proposal.action, to: states[parent])
                guard visited.insert(domain.key(of: state)).inserted else {
                    stats.duplicates += 1
                    continue
                }
                let reward = domain.processReward(of: state)
                let g = settings.aggregation.fold(gs[parent], reward)
                let f = g + settings.lambda * q
                let id = states.count
                let depth = trace[parent].depth + 1
                states.append(state)
                paths.append(paths[parent].extended(by: proposal))
                gs.append(g)
                trace.append(TraceNode(id: id, parent: parent, depth: depth, action: domain.describe(proposal.action),
                                       f: f, g: g, h: q, reward: reward, terminal: false, expandedAt: nil,
                                       verification: nil, count: proposal.count))
                if domain.isTerminal(state) || depth >= settings.maxDepth {
                    trace[id].terminal = true
                    stats.terminals += 1
                    let verification = try await domain.verify(state)
                    stats.cost += verification.cost
                    trace[id].verification = verification
                    if isBetter(id, than: best) { best = id }
                    if verification.reward == 1 {
                        report(progress, stats, f: f)
                        return finish(.solved)
                    }
                } else {
                    sequence += 1
                    open.insert(OpenEntry(f: f, sequence: sequence, node: id))
                }
            }
            report(progress, stats, f: open.max?.f ?? entry.f, best: best.map { ($0, trace[$0].verification?.passed ?? 0) })
        }
        return finish(.exhausted)
    }

    private func report(_ progress: (@Sendable (SearchProgress) -> Void)?, _ stats: SearchStatistics, f: Double,
                        best: (Int, Int)? = nil) {
        progress?(SearchProgress(expansions: stats.expansions, bestF: f, generatedTokens: stats.cost.generatedTokens,
                                 bestPassed: best?.1, bestNode: best?.0))
    }

    /// SplitMix64: per-expansion seeds that differ in every bit yet are reproducible.
    static func mix(_ seed: UInt64, _ i: UInt64) -> UInt64 {
        var z = seed &+ (i &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
