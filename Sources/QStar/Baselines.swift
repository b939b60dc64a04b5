import Basics

/// One program at temperature 0: the policy's own answer, the floor every
/// search must clear.
public struct GreedyDecoding: SearchAlgorithm {
    public let name = "greedy"
    public let summary = "one program at temperature 0"
    public let usesValueModel = false
    public init() {}

    public func run<Domain: PlanningDomain>(_ context: SearchContext<Domain>) async throws -> SearchResult<Domain.State> {
        try await sample(context, n: 1, temperature: 0, batch: 1, budget: Budget(), select: 1)
    }
}

/// N sampled programs; the first that passes the visible checks wins (or,
/// with `select`, the passing one whose behaviour most share), else the one
/// passing most (ties to the policy's higher mean log-probability).
/// `branchSamples` programs per call (the server decodes them in one batch,
/// faster in wall time, but a token budget then stops only between batches).
public struct BestOfN: SearchAlgorithm {
    public let name = "best-of-n"
    public let summary = "up to --samples programs at --temperature; the first that passes wins"
    public let usesValueModel = false
    public init() {}

    public func run<Domain: PlanningDomain>(_ context: SearchContext<Domain>) async throws -> SearchResult<Domain.State> {
        let s = context.settings
        return try await sample(context, n: s.samples, temperature: s.temperature, batch: min(max(1, s.branchSamples), s.samples),
                                budget: s.budget, select: s.select)
    }
}

/// Whole programs from the root, judged one by one, for the baselines. With
/// other framings of the problem (`PlanningDomain.alternatives`) the calls
/// take their starts in turn, the root's first: sampling a mixture of the
/// distributions, the baseline a search over them has to beat.
private func sample<Domain: PlanningDomain>(_ context: SearchContext<Domain>, n: Int, temperature: Double, batch: Int,
                                            budget: Budget, select: Int) async throws -> SearchResult<Domain.State> {
    let domain = context.domain
    let starts = [domain.root] + domain.alternatives().map(\.state)
    var r = SearchRecorder(root: domain.root, clock: context.clock, progress: context.progress,
                           select: select)
    var drawn = 0
    while drawn < n {
        try Task.checkCancellation()
        if let reason = r.exhausted(budget) { return r.finish(reason) }
        let size = min(batch, n - drawn)
        let start = starts[r.stats.expansions % starts.count]
        let batch = try await domain.continuations(from: start, n: size, temperature: temperature,
                                                   seed: SplitMix64.mix(context.settings.seed, UInt64(drawn)))
        let before = r.call(batch.cost)
        drawn += size
        let states = batch.paths.map { path in path.reduce(start) { domain.apply($1.action, to: $0) } }
        // The batch's programs are judged side by side and booked in order.
        let verdicts = Concurrently(states.map { state in { try await domain.verify(state) } })
        defer { verdicts.cancel() }
        for (i, path) in batch.paths.enumerated() {
            let state = states[i]
            let tokens = path.reduce(0) { $0 + $1.tokens }
            let logprob = tokens == 0 ? 0 : path.reduce(0) { $0 + $1.logprobSum } / Double(tokens)
            let id = r.add(state, TraceNode(id: 0, parent: 0, depth: 1, action: "sample \(r.count)", f: logprob, h: logprob),
                           score: logprob, tokensBefore: before)
            r.trace[id].logprob = logprob
            let verification = try await verdicts.value(i)
            let behaviour = try await domain.behaviourForSelection(of: state, verification, select: select)
            if let behaviour { r.spend(behaviour.cost) }
            r.judged(id, verification, behaviour: behaviour?.fingerprint)
            r.report()
            if r.satisfied { return r.finish(.solved) }
        }
    }
    return r.finish(.exhausted)
}
