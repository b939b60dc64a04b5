/// The baselines Q* is measured against, on the same domain and the same cost
/// ledger: greedy decoding and best-of-N sampling.
public struct Sampler<Domain: PlanningDomain>: Sendable {
    public let domain: Domain
    public let clock: any SearchClock

    public init(domain: Domain, clock: any SearchClock = SystemClock()) {
        self.domain = domain
        self.clock = clock
    }

    /// One program at temperature 0.
    public func greedy() async throws -> SearchResult<Domain.State> {
        try await sample(n: 1, temperature: 0, seed: 0, batch: 1, maxGeneratedTokens: nil)
    }

    /// N sampled programs; the first that passes the visible checks wins, else
    /// the one passing most (ties to the policy's higher mean log-probability).
    /// Programs are drawn `batch` at a time so a token budget can stop early.
    public func bestOfN(n: Int, temperature: Double, seed: UInt64, batch: Int = 4,
                        maxGeneratedTokens: Int? = nil) async throws -> SearchResult<Domain.State> {
        try await sample(n: n, temperature: temperature, seed: seed, batch: batch, maxGeneratedTokens: maxGeneratedTokens)
    }

    private func sample(n: Int, temperature: Double, seed: UInt64, batch: Int,
                        maxGeneratedTokens: Int?) async throws -> SearchResult<Domain.State> {
        let started = clock.now()
        var stats = SearchStatistics()
        var trace: [TraceNode] = [TraceNode(id: 0, parent: nil, depth: 0, action: "", f: 0, g: 0, h: 0, reward: 0,
                                            terminal: false, expandedAt: 0, verification: nil, count: 1)]
        var states: [Domain.State] = [domain.root]
        var best: Int?
        var drawn = 0
        stats.stop = .exhausted
        draw: while drawn < n {
            try Task.checkCancellation()
            if let limit = maxGeneratedTokens, stats.cost.generatedTokens >= limit { stats.stop = .tokens; break }
            let size = min(batch, n - drawn)
            let batchSeed = QStarSearch<Domain>.mix(seed, UInt64(drawn))
            let result = try await domain.rollouts(from: domain.root, n: size, temperature: temperature, seed: batchSeed)
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
                trace.append(TraceNode(id: id, parent: 0, depth: 1, action: "sample \(id)", f: logprob, g: 0,
                                       h: logprob, reward: 0, terminal: true, expandedAt: nil,
                                       verification: verification, count: 1))
                if let b = best {
                    let vb = trace[b].verification!
                    if verification.passed > vb.passed || (verification.passed == vb.passed && logprob > trace[b].f) {
                        best = id
                    }
                } else {
                    best = id
                }
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
}
