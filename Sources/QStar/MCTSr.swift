import Basics
import Foundation

/// MCTSr, Monte Carlo tree self-refine (Zhang et al. 2024, arXiv 2406.07394),
/// on the same engine and ledger as Q*: nodes are whole episodes, an
/// expansion asks the policy to criticise an episode (told what the verifier
/// said) and to rewrite it, and each new episode is valued by the policy's own
/// strict scores.
///
/// - Q(a) = ½(min R + mean R) over |R| sampled scores in [−100, 100]; a score
///   above 95 is cut down by 50 (full-score suppression). With no samples
///   (`rewardSamples` = 0) Q is the verifier's graded credit × 100 alone.
/// - Hard evidence first: an episode that passes the visible checks ends the
///   search and is the answer; among failures, more checks passed outranks any
///   score (the recorder's rule).
/// - Selection: among answers not fully expanded (fewer than `maxChildren`
///   refinements, and no refinement valued above the answer itself), the one
///   with the highest UCT = Q(a) + c·√(ln(N(parent) + 1) / (N(a) + ε)).
/// - The exploration constant is dynamic: c = c₀ · max(1, σ(Q)), the spread of
///   the Q values seen so far, so exploration keeps pace with the scores'
///   scale (a fixed c on a ±100 scale would never explore).
/// - Backup: Q'(a) = ½(Q(a) + max over children Q), up to the root; visits counted on the way.
public struct MCTSr: SearchAlgorithm {
    public let name = "mctsr"
    public let summary = "MCTSr: whole programs criticised with the tests' feedback, rewritten, self-scored, chosen by UCT"
    public let usesValueModel = false
    static let epsilon = 1e-5

    public init() {}

    /// An answer in the tree: `id` is its trace node, `q` its backed-up value
    /// (the trace keeps its own value as h and the backed-up one as f).
    struct Node {
        var id: Int
        var parent: Int?
        var children: [Int] = []
        var q: Double
        var visits = 1
    }

    public func run<Domain: PlanningDomain>(_ context: SearchContext<Domain>) async throws -> SearchResult<Domain.State> {
        let domain = context.domain, s = context.settings
        var r = SearchRecorder(root: domain.root, clock: context.clock, progress: context.progress)
        var nodes: [Node] = []
        var qs: [Double] = []

        func seed() -> UInt64 { SplitMix64.mix(s.seed, UInt64(r.stats.expansions)) }

        /// Judges `state` (unless it is the placeholder), values it and adds it to the tree.
        func add(_ state: Domain.State, parent: Int?, label: String, tokensBefore: Int, judge: Bool = true) async throws -> Int {
            let verification = judge ? try await domain.verify(state) : nil
            let credit = (verification?.credit ?? 0) * 100
            var q = credit
            if verification?.reward == 1 {
                q = 100
            } else if s.rewardSamples > 0, let scores = try await evaluate(state) {
                q = 0.5 * (scores.min()! + scores.reduce(0, +) / Double(scores.count))
            }
            let depth = parent.map { r.trace[nodes[$0].id].depth + 1 } ?? 1
            let id = r.add(state, TraceNode(id: 0, parent: parent.map { nodes[$0].id } ?? 0, depth: depth, action: label, f: q, h: q),
                           score: q, tokensBefore: tokensBefore)
            if let verification { r.judged(id, verification) }
            nodes.append(Node(id: id, parent: parent, q: q))
            qs.append(q)
            if let p = parent { nodes[p].children.append(nodes.count - 1) }
            return nodes.count - 1
        }

        /// |R| strict self-scores, suppressed; an answer that holds no score is
        /// asked for again once. Nil when none came back or the budget ran out
        /// first (the graded outcome stands in).
        func evaluate(_ state: Domain.State) async throws -> [Double]? {
            var scores: [Double] = []
            var missing = s.rewardSamples
            for _ in 0..<2 where missing > 0 {
                try Task.checkCancellation()
                if r.exhausted(s.budget) != nil { break }
                let sampled = try await domain.selfEvaluate(state, n: missing, seed: seed())
                r.call(sampled.cost)
                let parsed = sampled.scores.compactMap { $0 }.map(Self.suppressed)
                scores += parsed
                missing -= parsed.count
            }
            return scores.isEmpty ? nil : scores
        }

        func finish(_ reason: StopReason) -> SearchResult<Domain.State> { r.finish(reason) }

        // The root answer: the greedy episode, or a placeholder.
        if s.placeholderRoot, let placeholder = domain.placeholder() {
            _ = try await add(placeholder, parent: nil, label: "placeholder answer", tokensBefore: 0, judge: false)
        } else {
            let greedy = try await domain.continuations(from: domain.root, n: 1, temperature: 0, seed: seed())
            let before = r.call(greedy.cost)
            guard let path = greedy.paths.first else { return finish(.exhausted) }
            let state = path.reduce(domain.root) { domain.apply($1.action, to: $0) }
            _ = try await add(state, parent: nil, label: "greedy answer", tokensBefore: before)
            r.report()
            if r.satisfied { return finish(.solved) }
        }

        while true {
            try Task.checkCancellation()
            if let reason = r.exhausted(s.budget) { return finish(reason) }
            let chosen = Self.select(nodes, c: Self.exploration(s.exploration, qs), maxChildren: s.maxChildren)
            let state = r.state(nodes[chosen].id)
            let critique = try await domain.critique(state, after: r.trace[nodes[chosen].id].verification, seed: seed())
            r.call(critique.cost)
            r.trace[nodes[chosen].id].expandedAt = r.stats.expansions
            if let reason = r.exhausted(s.budget) { return finish(reason) }
            let refined = try await domain.refine(state, following: critique, seed: seed())
            let before = r.call(refined.cost)
            let child = try await add(refined.state, parent: chosen, label: "refined after the critique: " + Self.gist(critique.text),
                                      tokensBefore: before)
            r.report(frontier: nodes[child].q)
            if r.satisfied { return finish(.solved) }
            Self.backUp(&nodes, from: child)
            var a = nodes[child].parent
            while let i = a {
                r.trace[nodes[i].id].f = nodes[i].q
                a = nodes[i].parent
            }
        }
    }

    /// Full-score suppression: the policy may not give itself top marks.
    static func suppressed(_ score: Double) -> Double {
        let clamped = min(100, max(-100, score))
        return clamped > 95 ? clamped - 50 : clamped
    }

    /// c = c₀ · max(1, σ(Q)).
    static func exploration(_ c0: Double, _ qs: [Double]) -> Double {
        guard qs.count > 1 else { return c0 }
        let mean = qs.reduce(0, +) / Double(qs.count)
        let sd = (qs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(qs.count)).squareRoot()
        return c0 * max(1, sd)
    }

    static func uct(_ nodes: [Node], _ i: Int, c: Double) -> Double {
        let parentVisits = nodes[i].parent.map { nodes[$0].visits } ?? 0
        return nodes[i].q + c * (log(Double(parentVisits) + 1) / (Double(nodes[i].visits) + epsilon)).squareRoot()
    }

    /// The answer to refine next: the highest UCT among those not fully
    /// expanded (ties to the earliest); the root when all are.
    static func select(_ nodes: [Node], c: Double, maxChildren: Int) -> Int {
        var best: (index: Int, uct: Double)?
        for i in nodes.indices {
            let n = nodes[i]
            let full = n.children.count >= maxChildren || n.children.contains { nodes[$0].q > n.q }
            guard !full else { continue }
            let u = uct(nodes, i, c: c)
            if best == nil || u > best!.uct { best = (i, u) }
        }
        return best?.index ?? 0
    }

    /// Q'(a) = ½(Q(a) + max child Q) for each ancestor, and one more visit each.
    static func backUp(_ nodes: inout [Node], from child: Int) {
        var a = nodes[child].parent
        while let i = a {
            let bestChild = nodes[i].children.map { nodes[$0].q }.max() ?? nodes[i].q
            nodes[i].q = 0.5 * (nodes[i].q + bestChild)
            nodes[i].visits += 1
            a = nodes[i].parent
        }
    }

    /// The critique, shortened for the trace.
    static func gist(_ text: String) -> String {
        text.count > 600 ? String(text.prefix(600)) + "…" : text
    }
}
