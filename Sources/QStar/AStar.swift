import Basics
import HeapModule

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
public struct AStarSearch: SearchAlgorithm {
    public let name = "qstar"
    public let summary = "Q*: A* over lines, f = g (syntax reward) + λ·h (value model)"
    public let usesValueModel = true

    public init() {}

    public func run<Domain: PlanningDomain>(_ context: SearchContext<Domain>) async throws -> SearchResult<Domain.State> {
        let domain = context.domain, settings = context.settings, clock = context.clock
        let started = clock.now()
        var stats = SearchStatistics()
        var states: [Domain.State] = [domain.root]
        var paths: [PathStats] = [PathStats()]
        var gs: [Double?] = [nil]
        var trace: [TraceNode] = [.root]
        var open = Heap<OpenEntry>()
        var sequence = 0
        open.insert(OpenEntry(f: 0, sequence: sequence, node: 0))
        var visited: Set<String> = [domain.key(of: domain.root)]
        var best: Int?

        func bestKey(_ i: Int?) -> (Verification, Double)? { i.map { (trace[$0].verification!, trace[$0].f) } }

        func report(frontier f: Double) {
            context.progress?(SearchProgress(
                expansions: stats.expansions, generatedTokens: stats.cost.generatedTokens, programsTried: stats.terminals,
                bestF: f, best: best.map { states[$0] }, bestVerification: best.flatMap { trace[$0].verification },
                bestNode: best))
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
            let seed = SplitMix64.mix(settings.seed, UInt64(stats.expansions))
            stats.expansions += 1
            let expansion = try await domain.propose(from: states[parent], k: settings.k, seed: seed)
            stats.cost += expansion.cost
            let qs = context.value.qValues(states[parent], paths[parent], expansion.proposals)

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
                                       f: f, g: g, h: q, reward: reward, count: proposal.count))
                if domain.isTerminal(state) || depth >= settings.maxDepth {
                    trace[id].terminal = true
                    stats.terminals += 1
                    let verification = try await domain.verify(state)
                    stats.cost += verification.cost
                    trace[id].verification = verification
                    if isBetter((verification, f), than: bestKey(best)) { best = id }
                    if verification.reward == 1 {
                        report(frontier: f)
                        return finish(.solved)
                    }
                } else {
                    sequence += 1
                    open.insert(OpenEntry(f: f, sequence: sequence, node: id))
                }
            }
            report(frontier: open.max?.f ?? entry.f)
        }
        return finish(.exhausted)
    }
}
