import Basics

/// One program at temperature 0: the policy's own answer, the floor every
/// search must clear.
public struct GreedyDecoding: SearchAlgorithm {
    public let name = "greedy"
    public let summary = "one program at temperature 0"
    public let usesValueModel = false
    public init() {}

    public func run<Domain: PlanningDomain>(_ context: SearchContext<Domain>) async throws -> SearchResult<Domain.State> {
        try await sample(context, n: 1, temperature: 0, batch: 1, maxGeneratedTokens: nil)
    }
}

/// N sampled programs; the first that passes the visible checks wins, else
/// the one passing most (ties to the policy's higher mean log-probability).
/// Programs are drawn a few at a time so a token budget can stop it early.
public struct BestOfN: SearchAlgorithm {
    public let name = "best-of-n"
    public let summary = "up to --samples programs at --temperature; the first that passes wins"
    public let usesValueModel = false
    /// Programs per request: the server decodes them in one batch.
    public var batch = 4
    public init() {}

    public func run<Domain: PlanningDomain>(_ context: SearchContext<Domain>) async throws -> SearchResult<Domain.State> {
        let s = context.settings
        return try await sample(context, n: s.samples, temperature: s.temperature, batch: min(batch, s.samples),
                                maxGeneratedTokens: s.budget.maxGeneratedTokens)
    }
}

/// Whole programs from the root, judged one by one, for the baselines.
private func sample<Domain: PlanningDomain>(_ context: SearchContext<Domain>, n: Int, temperature: Double, batch: Int,
                                            maxGeneratedTokens: Int?) async throws -> SearchResult<Domain.State> {
    let domain = context.domain, clock = context.clock
    let started = clock.now()
    var stats = SearchStatistics()
    var trace: [TraceNode] = [.root]
    var states: [Domain.State] = [domain.root]
    var best: Int?
    var drawn = 0
    stats.stop = .exhausted
    draw: while drawn < n {
        try Task.checkCancellation()
        if let limit = maxGeneratedTokens, stats.cost.generatedTokens >= limit { stats.stop = .tokens; break }
        let size = min(batch, n - drawn)
        let result = try await domain.rollouts(from: domain.root, n: size, temperature: temperature,
                                               seed: SplitMix64.mix(context.settings.seed, UInt64(drawn)))
        stats.cost += result.cost
        stats.expansions += 1
        drawn += size
        for rollout in result.rollouts {
            let verification = try await domain.verify(rollout.state)
            stats.cost += verification.cost
            stats.terminals += 1
            let id = states.count
            states.append(rollout.state)
            let logprob = rollout.logprobMean
            trace.append(TraceNode(id: id, parent: 0, depth: 1, action: "sample \(id)", f: logprob, h: logprob,
                                   terminal: true, verification: verification))
            if isBetter((verification, logprob), than: best.map { (trace[$0].verification!, trace[$0].f) }) { best = id }
            context.progress?(SearchProgress(
                expansions: stats.expansions, generatedTokens: stats.cost.generatedTokens, programsTried: stats.terminals,
                best: best.map { states[$0] }, bestVerification: best.flatMap { trace[$0].verification }, bestNode: best))
            if verification.reward == 1 {
                best = id
                stats.stop = .solved
                break draw
            }
        }
    }
    stats.nodes = trace.count
    stats.wallSeconds = clock.now() - started
    return SearchResult(best: best.map { states[$0] }, bestVerification: best.flatMap { trace[$0].verification },
                        bestNode: best, statistics: stats, trace: trace)
}
