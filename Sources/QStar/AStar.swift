import Basics
import Foundation
import HeapModule

/// Q*: A* over the policy's steps with f(s) = g(s) + λ·h(s), g folding the
/// process rewards of the path, h a value estimate, the verifier's verdict the
/// terminal reward.
///
/// Two ways to expand a node, chosen by `SearchSettings.continuations`:
///
/// - **K steps** (the paper's): one policy call proposes K next steps; every
///   child is scored from that call, h = Q̂(s, a) (by the Bellman identity with
///   no intermediate reward, the value of s' = (s, a) is what Q̂ estimates for a).
/// - **Continuations** (the default): an expansion samples a whole episode from
///   the node and adds it as a path of steps, merged with what the tree already
///   holds. The first expansion of an attempt is greedy, so the search costs
///   greedy's tokens when greedy is right. A node stays on the frontier after
///   it is expanded (partial expansion): its priority is its value times the
///   probability mass the policy put on steps not yet tried there, so the
///   search branches where the policy was unsure, and from deep nodes a new
///   episode costs only its remaining steps. A node's value mixes the value
///   model with the graded outcomes of the episodes through it
///   ((1−μ)·v + μ·z). A failed episode can be written again with the
///   verifier's feedback in view (`PlanningDomain.revision`), and the domain's
///   other framings of the problem (`PlanningDomain.alternatives`) are attempts
///   of their own beside the root's, competing for draws by the same priority.
///   Which nodes may be drawn from again is `SearchSettings.branching`: by
///   default only the attempts' roots, so the search chooses among fresh
///   starts (framings, revisions) by how close their programs came.
public struct AStarSearch: SearchAlgorithm {
    public let name = "qstar"
    public let summary = "Q*: A* over steps, f = g (syntax reward) + λ·h (value model, verified outcomes)"
    public let usesValueModel = true

    public init() {}

    public func run<Domain: PlanningDomain>(_ context: SearchContext<Domain>) async throws -> SearchResult<Domain.State> {
        var search = TreeSearch(context)
        return context.settings.continuations ? try await search.continuations() : try await search.kSteps()
    }
}

/// The open list: the highest priority first, ties to the earliest pushed (deterministic).
private struct OpenEntry: Comparable {
    enum Kind { case expand, revise }
    var f: Double
    var sequence: Int
    var node: Int
    var kind: Kind
    /// The node's version when pushed: a newer push makes this entry stale.
    var version: Int
    static func < (a: OpenEntry, b: OpenEntry) -> Bool {
        a.f != b.f ? a.f < b.f : a.sequence > b.sequence
    }
    static func == (a: OpenEntry, b: OpenEntry) -> Bool { a.sequence == b.sequence }
}

/// What the search knows about a node beyond its trace entry.
private struct NodeInfo {
    var g: Double?
    var path: PathStats
    /// v: the value model's estimate for the step into this node (1 for an attempt's root).
    var prior: Double
    var children: [Int] = []
    /// Probability the policy put on the distinct steps already tried here.
    var triedMass = 0.0
    /// Expansions here that drew only steps already tried.
    var repeats = 0
    var expansions = 0
    /// Graded outcomes of the episodes through this node, weighted (see `Branching`).
    var zSum = 0.0
    var zWeight = 0.0
    /// Probability of the distinct episodes drawn through here, from here.
    var drawnMass = 0.0
    /// The root of the attempt this node belongs to.
    var attempt: Int
    /// Tokens of the cheapest known way from here to the end of an episode.
    var remainder: Int?
    var version = 0
    var terminal = false
}

private struct TreeSearch<Domain: PlanningDomain> {
    let context: SearchContext<Domain>
    var r: SearchRecorder<Domain.State>
    var info: [NodeInfo]
    var index: [String: Int]
    var open = Heap<OpenEntry>()
    var sequence = 0
    /// Behaviours of the episodes judged so far, for behavioural dedup, and
    /// the episodes that repeated one (new code, known behaviour).
    var seenBehaviours: Set<String> = []
    var behaviourRepeats: Set<Int> = []
    /// Added to the sampling temperature each time every node was spent (see `reopen`).
    var heat = 0.0
    /// Judgements of the episodes one expansion brought, started together.
    var judging: (work: Concurrently<Judgement>, index: [String: Int])?
    typealias Judgement = (verification: Verification, behaviour: Behaviour?)
    var domain: Domain { context.domain }
    var settings: SearchSettings { context.settings }

    init(_ context: SearchContext<Domain>) {
        self.context = context
        r = SearchRecorder(root: context.domain.root, clock: context.clock, progress: context.progress,
                           select: context.settings.select)
        info = [NodeInfo(g: nil, path: PathStats(), prior: 1, attempt: 0)]
        index = [context.domain.key(of: context.domain.root): 0]
    }

    mutating func push(_ node: Int, _ kind: OpenEntry.Kind, f: Double) {
        sequence += 1
        info[node].version += 1
        open.insert(OpenEntry(f: f, sequence: sequence, node: node, kind: kind, version: info[node].version))
    }

    /// Adds the state `action` leads to from `parent`, or finds it when the tree
    /// already holds it. Judges it when it ends an episode.
    mutating func step(from parent: Int, _ proposal: Proposal<Domain.Action>, q: Double,
                       tokensBefore: Int, drawnAt origin: Int) async throws -> (id: Int, new: Bool) {
        let state = domain.apply(proposal.action, to: r.state(parent))
        let key = domain.key(of: state)
        if let existing = index[key] { return (existing, false) }
        let reward = domain.processReward(of: state)
        let g = settings.aggregation.fold(info[parent].g, reward)
        let f = g + settings.lambda * q
        let depth = r.trace[parent].depth + 1
        let id = r.add(state, TraceNode(id: 0, parent: parent, depth: depth, action: domain.describe(proposal.action),
                                        f: f, g: g, h: q, reward: reward, count: proposal.count),
                       score: f, tokensBefore: tokensBefore)
        info.append(NodeInfo(g: g, path: info[parent].path.extended(by: proposal), prior: q, attempt: info[parent].attempt))
        index[key] = id
        info[parent].children.append(id)
        info[parent].triedMass += exp(proposal.decisionLogprob)
        if domain.isTerminal(state) || depth >= settings.maxDepth {
            info[id].terminal = true
            r.trace[id].drawnFrom = origin
            r.trace[id].logprob = info[id].path.logprobMean
            r.trace[id].attempt = info[id].attempt == 0 ? nil : info[id].attempt
            let verification: Verification, behaviour: Behaviour?
            if let j = judging, let i = j.index[key] {
                (verification, behaviour) = try await j.work.value(i)
            } else {
                (verification, behaviour) = try await Self.judge(state, domain, settings)
            }
            if let b = behaviour { r.spend(b.cost) }
            r.judged(id, verification, behaviour: behaviour?.fingerprint)
            backUp(verification.credit, from: id, drawnAt: origin)
            if settings.dedup, let b = behaviour?.fingerprint {
                let key = "\(verification.passed)|\(b)"
                if !seenBehaviours.insert(key).inserted { behaviourRepeats.insert(id) }
            }
        }
        return (id, true)
    }

    /// The verifier's verdict, and probes for dedup (every episode) or for
    /// choosing among passing ones; for dedup the two runs go side by side.
    static func judge(_ state: Domain.State, _ domain: Domain, _ settings: SearchSettings) async throws -> Judgement {
        if settings.dedup {
            async let verification = domain.verify(state)
            async let behaviour = domain.behaviour(of: state)
            return (try await verification, try await behaviour)
        }
        let verification = try await domain.verify(state)
        return (verification, try await domain.behaviourForSelection(of: state, verification, select: settings.select))
    }

    /// Starts judging the new episodes of a batch at once, so they run side by
    /// side while `step` walks them in order; `step` reads them by state key.
    mutating func startJudging(_ paths: [[Proposal<Domain.Action>]], from node: Int) -> Concurrently<Judgement> {
        var index: [String: Int] = [:]
        var work: [@Sendable () async throws -> Judgement] = []
        let (domain, settings) = (self.domain, self.settings)
        for path in paths {
            let end = path.reduce(r.state(node)) { domain.apply($1.action, to: $0) }
            let key = domain.key(of: end)
            guard domain.isTerminal(end), self.index[key] == nil, index[key] == nil else { continue }
            index[key] = work.count
            work.append { try await Self.judge(end, domain, settings) }
        }
        let started = Concurrently(work)
        judging = (started, index)
        return started
    }

    /// Books a graded outcome, and the episode's probability, on every node of
    /// its attempt's path. With `.episode` branching, nodes above `origin` (where
    /// the episode was drawn) weigh it by the probability of reaching `origin`.
    mutating func backUp(_ z: Double, from terminal: Int, drawnAt origin: Int) {
        let byEpisode = settings.branching.byEpisode
        let attempt = info[terminal].attempt
        let (end, branch) = (info[terminal].path.logprobSum, info[origin].path.logprobSum)
        var above = false
        var node: Int? = terminal
        while let n = node {
            let here = info[n].path.logprobSum
            let w = byEpisode && above ? exp(min(0, branch - here)) : 1
            info[n].zSum += w * z
            info[n].zWeight += w
            info[n].drawnMass += exp(min(0, end - here))
            if n == origin { above = true }
            if n == attempt { break }
            node = r.trace[n].parent
        }
    }

    /// v mixed with the verified outcomes of the episodes through `node`.
    func value(_ node: Int) -> Double {
        let n = info[node]
        let mu = settings.rolloutWeight
        guard n.zWeight > 0, mu > 0 else { return n.prior }
        switch settings.branching {
        case .step:
            return (1 - mu) * n.prior + mu * n.zSum / n.zWeight
        case .episode, .root:
            let c = (1 - mu) / mu
            return (c * n.prior + n.zSum) / (c + n.zWeight)
        }
    }

    /// f of expanding `node` again: its value times the probability mass on steps not tried yet.
    func priority(_ node: Int) -> Double {
        let n = info[node]
        let untried = max(0, 1 - (settings.branching.byEpisode ? n.drawnMass : n.triedMass))
        var h = value(node) * (settings.uncertainty > 0 ? pow(untried, settings.uncertainty) : 1)
        h *= pow(0.5, Double(n.repeats))
        if settings.costWeight > 0 {
            // Per expected token, relative to a typical episode of `typicalTokens`.
            let cost = Double(max(n.remainder ?? Self.typicalTokens, 1)) / Double(Self.typicalTokens)
            h /= pow(cost, settings.costWeight)
        }
        return (n.g ?? 0) + settings.lambda * h
    }

    /// The scale of "a whole episode" in tokens, for the cost term.
    static var typicalTokens: Int { 100 }

    /// The failed episode written again with the verdict in view: valued by how
    /// close the failure came (its graded credit).
    func revisePriority(_ terminal: Int) -> Double {
        settings.lambda * settings.revise * (0.5 + 0.5 * (r.trace[terminal].verification?.credit ?? 0))
    }

    // MARK: Continuations

    mutating func continuations() async throws -> SearchResult<Domain.State> {
        push(0, .expand, f: settings.lambda)
        // Pushed after the root, so at equal priority the root's greedy episode comes first.
        for alternative in domain.alternatives() {
            if let id = openAttempt(alternative.state, action: "⟲ " + alternative.label, parent: 0, prior: 1) {
                push(id, .expand, f: priority(id))
            }
        }
        while let entry = open.popMax() ?? reopen() {
            try Task.checkCancellation()
            guard entry.version == info[entry.node].version else { continue }
            if let reason = r.exhausted(settings.budget) { return r.finish(reason) }
            switch entry.kind {
            case .revise:
                try await revise(entry.node)
            case .expand:
                try await expand(entry.node)
            }
            if r.satisfied {
                r.report(frontier: entry.f)
                return r.finish(.solved)
            }
            r.report(frontier: open.max?.f ?? entry.f)
        }
        return r.finish(.exhausted)
    }

    mutating func expand(_ node: Int) async throws {
        let attemptRoot = info[node].attempt == node
        let greedy = settings.greedyFirst && attemptRoot && info[node].expansions == 0
        r.trace[node].expandedAt = r.stats.expansions
        let batch = try await domain.continuations(from: r.state(node), n: greedy ? 1 : settings.branchSamples,
                                                   temperature: greedy ? 0 : settings.temperature + heat,
                                                   seed: SplitMix64.mix(settings.seed, UInt64(r.stats.expansions)))
        let before = r.call(batch.cost)
        info[node].expansions += 1
        let started = startJudging(batch.paths, from: node)
        defer {
            started.cancel()
            judging = nil
        }
        var touched: Set<Int> = [node]
        if batch.paths.isEmpty { info[node].repeats += 1 }
        for path in batch.paths {
            var current = node
            // Tokens left after each step: the cost of a new episode from the node the step leads to.
            var left = path.reduce(0) { $0 + $1.tokens }
            info[node].remainder = min(info[node].remainder ?? left, left)
            // A draw repeats what the node has when its first step (`.step`) or its whole episode (`.episode`) is known.
            var known = true
            for (i, proposal) in path.enumerated() {
                try Task.checkCancellation()
                let q = context.value.qValues(r.state(current), info[current].path, [proposal]).first ?? 0
                let (id, new) = try await step(from: current, proposal, q: q, tokensBefore: before, drawnAt: node)
                known = known && !new
                switch settings.branching {
                case .step: if i == 0 && !new { info[node].repeats += 1 }
                case .episode, .root: if info[id].terminal && known { info[node].repeats += 1 }
                }
                left -= proposal.tokens
                info[id].remainder = min(info[id].remainder ?? left, left)
                touched.insert(id)
                if info[id].terminal {
                    if new && r.satisfied { return }
                    // A new program that behaves like a known one repeats, as far as branching here goes.
                    if behaviourRepeats.contains(id) { info[node].repeats += 1 }
                    if new, settings.revise > 0, r.trace[id].verification?.reward != 1 {
                        push(id, .revise, f: revisePriority(id))
                    }
                    var a: Int? = r.trace[id].parent
                    while let n = a { touched.insert(n); if n == info[id].attempt { break }; a = r.trace[n].parent }
                    break
                }
                current = id
            }
        }
        // A node whose draws keep repeating what it has is spent: leave it.
        for n in touched where !info[n].terminal && info[n].repeats < Self.maxRepeats
            && (settings.branching != .root || info[n].attempt == n) {
            push(n, .expand, f: priority(n))
        }
    }

    /// Draws at a node that bring nothing new before the search stops going back there.
    static var maxRepeats: Int { 3 }

    /// Every node is spent (its draws kept repeating what the tree holds) but
    /// budget may remain: rather than give up with a failing program, start
    /// over from the root, sampling hotter so the policy leaves the programs
    /// it keeps repeating. Only a search that would otherwise have ended comes
    /// here, so what it does before is unchanged, and its order still does not
    /// depend on the budget. Ends when the temperature would pass `maxTemperature`.
    mutating func reopen() -> OpenEntry? {
        guard !r.satisfied, settings.temperature + heat + Self.heatStep <= Self.maxTemperature + 1e-9 else { return nil }
        heat += Self.heatStep
        info[0].repeats = 0
        push(0, .expand, f: priority(0))
        return open.popMax()
    }

    static var heatStep: Double { 0.2 }
    static var maxTemperature: Double { 1.4 }

    mutating func revise(_ terminal: Int) async throws {
        guard let verification = r.trace[terminal].verification,
              let state = domain.revision(of: r.state(terminal), after: verification) else { return }
        let prior = revisePriority(terminal) / max(settings.lambda, 1e-9)
        guard let id = openAttempt(state, action: "⟲ revise", parent: terminal, prior: prior) else { return }
        try await expand(id)
    }

    /// Adds a fresh start (a revision, another framing) as the root of an
    /// attempt of its own, valued `prior`; nil when the tree already holds it.
    mutating func openAttempt(_ state: Domain.State, action: String, parent: Int, prior: Double) -> Int? {
        let key = domain.key(of: state)
        guard index[key] == nil else { return nil }
        let id = r.add(state, TraceNode(id: 0, parent: parent, depth: r.trace[parent].depth + 1, action: action,
                                        f: settings.lambda * prior, h: prior),
                       score: settings.lambda * prior, tokensBefore: r.tokens)
        info.append(NodeInfo(g: nil, path: PathStats(), prior: prior, attempt: id))
        index[key] = id
        return id
    }

    // MARK: K steps

    mutating func kSteps() async throws -> SearchResult<Domain.State> {
        if settings.greedyFirst {
            // The greedy episode first, as a path; its nodes then wait for K-step expansions.
            let batch = try await domain.continuations(from: domain.root, n: 1, temperature: 0,
                                                       seed: SplitMix64.mix(settings.seed, 0))
            let before = r.call(batch.cost)
            r.trace[0].expandedAt = 0
            var current = 0
            for proposal in batch.paths.first ?? [] {
                let q = context.value.qValues(r.state(current), info[current].path, [proposal]).first ?? 0
                let (id, new) = try await step(from: current, proposal, q: q, tokensBefore: before, drawnAt: 0)
                if r.satisfied { r.report(); return r.finish(.solved) }
                guard new, !info[id].terminal else { break }
                push(id, .expand, f: r.trace[id].f)
                current = id
            }
            // The root competes for a K-step expansion like the greedy path's nodes.
            push(0, .expand, f: settings.lambda)
        } else {
            push(0, .expand, f: 0)
        }
        while let entry = open.popMax() {
            try Task.checkCancellation()
            guard entry.version == info[entry.node].version else { continue }
            if let reason = r.exhausted(settings.budget) { return r.finish(reason) }
            let parent = entry.node
            r.trace[parent].expandedAt = r.stats.expansions
            let expansion = try await domain.propose(from: r.state(parent), k: settings.k,
                                                     seed: SplitMix64.mix(settings.seed, UInt64(r.stats.expansions)))
            let before = r.call(expansion.cost)
            let qs = context.value.qValues(r.state(parent), info[parent].path, expansion.proposals)
            for (proposal, q) in zip(expansion.proposals, qs) {
                try Task.checkCancellation()
                let (id, new) = try await step(from: parent, proposal, q: q, tokensBefore: before, drawnAt: parent)
                guard new else {
                    r.stats.duplicates += 1
                    continue
                }
                if r.satisfied {
                    r.report(frontier: r.trace[id].f)
                    return r.finish(.solved)
                }
                if !info[id].terminal { push(id, .expand, f: r.trace[id].f) }
            }
            r.report(frontier: open.max?.f ?? entry.f)
        }
        return r.finish(.exhausted)
    }
}
