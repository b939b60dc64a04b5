import Basics
import Foundation
import Synchronization
import Testing
@testable import QStar

/// A synthetic planning problem: states are paths of action labels; the
/// scripted policy says which actions each state offers, with which Q-value.
struct ScriptedDomain: PlanningDomain {
    struct Option: Sendable {
        var action: String
        var q: Double
        var reward: Double = 0
        var tokens = 10
    }
    /// Key of a state ("" for the root, "a/b" for a then b) → its options.
    var tree: [String: [Option]]
    /// Terminal keys and how many of 2 checks they pass.
    var goals: [String: Int]
    /// Graded credit of failed terminals (default: the fraction passed).
    var credit: [String: Double] = [:]
    var rollout: [[String]] = []
    /// Every state not in `tree` offers one more step: an endless chain.
    var endless = false
    /// Continuations by the key of the state they start from: the i-th draw there gets the i-th (cycling).
    var paths: [String: [[String]]] = [:]
    /// log p of a step, by action (default −0.1).
    var stepLogprob: [String: Double] = [:]
    /// Revisions allowed: a failed episode's retry starts at state ["retry <key>"].
    var revisable = false
    /// Other framings of the problem: each a fresh start at state [name].
    var framings: [String] = []
    let log = Log()

    final class Log: Sendable {
        let expanded = Mutex<[String]>([])
        let seeds = Mutex<[UInt64]>([])
        let verified = Mutex<[String]>([])
        let rolloutTemperatures = Mutex<[Double]>([])
        /// Each continuation call: the key it started from and the `n` it asked for.
        let continued = Mutex<[(key: String, n: Int)]>([])
        let draws = Mutex<[String: Int]>([:])
    }

    var root: [String] { [] }

    func propose(from state: [String], k: Int, seed: UInt64) async throws -> Expansion<String> {
        log.expanded.withLock { $0.append(key(of: state)) }
        log.seeds.withLock { $0.append(seed) }
        await Task.yield()
        let options = Array((tree[key(of: state)] ?? (endless ? [Option(action: "s\(state.count)", q: 0.5)] : [])).prefix(k))
        var cost = Cost()
        cost.llmCalls = 1
        cost.generatedTokens = options.reduce(0) { $0 + $1.tokens }
        return Expansion(proposals: options.map { Proposal(action: $0.action, logprobMean: Foundation.log($0.q), logprobSum: Foundation.log($0.q), tokens: 1) },
                         cost: cost)
    }

    func continuations(from state: [String], n: Int, temperature: Double, seed: UInt64) async throws -> Continuations<String> {
        log.rolloutTemperatures.withLock { $0.append(temperature) }
        log.continued.withLock { $0.append((key(of: state), n)) }
        let drawn = log.rolloutTemperatures.withLock { $0.count } - 1
        let picked: [[String]]
        if let script = paths[key(of: state)] {
            let first = log.draws.withLock { d in defer { d[key(of: state), default: 0] += n }; return d[key(of: state), default: 0] }
            picked = (0..<n).map { script[(first + $0) % script.count] }
        } else if !rollout.isEmpty {
            picked = (0..<n).map { rollout[(drawn * n + $0) % rollout.count] }
        } else {
            picked = []
        }
        var cost = Cost()
        cost.llmCalls = 1
        cost.generatedTokens = picked.reduce(0) { $0 + 10 * $1.count }
        return Continuations(paths: picked.map { $0.map { a in
            let lp = stepLogprob[a] ?? -0.1
            return Proposal(action: a, logprobMean: lp, logprobSum: lp, tokens: 10)
        } }, cost: cost)
    }

    func revision(of failed: [String], after verification: Verification) -> [String]? {
        revisable ? ["retry " + key(of: failed)] : nil
    }

    func alternatives() -> [(state: [String], label: String)] { framings.map { ([$0], "framing: \($0)") } }

    func apply(_ action: String, to state: [String]) -> [String] { state + [action] }

    func processReward(of state: [String]) -> Double {
        let parentKey = key(of: Array(state.dropLast()))
        return tree[parentKey]?.first { $0.action == state.last }?.reward ?? 0
    }

    func isTerminal(_ state: [String]) -> Bool { state.last?.hasSuffix("!") ?? false }

    /// Case and surrounding spaces do not matter: "A" and "a " are the same state.
    func key(of state: [String]) -> String {
        state.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.joined(separator: "/")
    }

    func verify(_ state: [String]) async throws -> Verification {
        log.verified.withLock { $0.append(key(of: state)) }
        let passed = goals[key(of: state)] ?? 0
        return Verification(passed: passed, total: 2, outcome: passed == 2 ? "passed" : "failed",
                            credit: passed == 2 ? 1 : credit[key(of: state)] ?? Double(passed) / 2)
    }

    func describe(_ action: String) -> String { action }
}

/// The Q-value of a proposal is carried in its log-probability: exp(logprob) = q.
func qFromLogprob<S: Sendable>() -> ValueModel<S, String> {
    ValueModel(name: "scripted") { _, _, proposals in proposals.map { exp($0.logprobMean) } }
}

/// K-step Q* (the paper's expansion): what the tests of A*'s order, g and budgets pin down.
func settings(lambda: Double = 1, agg: Aggregation = .min, budget: Budget = Budget(), k: Int = 4, seed: UInt64 = 7,
              samples: Int = 8) -> SearchSettings {
    var s = SearchSettings()
    s.continuations = false
    s.greedyFirst = false
    s.lambda = lambda
    s.aggregation = agg
    s.budget = budget
    s.k = k
    s.seed = seed
    s.samples = samples
    return s
}

func search(_ domain: ScriptedDomain, lambda: Double = 1, agg: Aggregation = .min, budget: Budget = Budget(),
            k: Int = 4, seed: UInt64 = 7, clock: any SearchClock = SystemClock()) async throws -> SearchResult<[String]> {
    try await AStarSearch().run(SearchContext(domain: domain, value: qFromLogprob(),
                                              settings: settings(lambda: lambda, agg: agg, budget: budget, k: k, seed: seed),
                                              clock: clock))
}

@Suite struct AStarTests {
    @Test func expandsInOrderOfF() async throws {
        let domain = ScriptedDomain(tree: [
            "": [.init(action: "a", q: 0.2), .init(action: "b", q: 0.9)],
            "b": [.init(action: "b1", q: 0.1)],
            "a": [.init(action: "a1", q: 0.5)],
            "b/b1": [], "a/a1": [],
        ], goals: [:])
        let result = try await search(domain)
        // b (0.9) before a (0.2); then a's child a1 (0.5) outranks b1 (0.1).
        #expect(domain.log.expanded.withLock { $0 } == ["", "b", "a", "a/a1", "b/b1"])
        #expect(result.statistics.stop == .exhausted)
        #expect(result.best == nil)
    }

    @Test func kStepsUseTheRootsFramingAlone() async throws {
        // Other framings are attempts of continuations only: the defaults name two, and K-step
        // expansions start from the first alone.
        var domain = ScriptedDomain(tree: ["": [.init(action: "a", q: 0.9)], "a": [.init(action: "b!", q: 0.9)]], goals: ["a/b!": 2])
        domain.framings = ["examples"]
        let result = try await search(domain)
        #expect(result.best == ["a", "b!"])
        #expect(domain.log.expanded.withLock { $0 } == ["", "a"])
        #expect(domain.log.continued.withLock { $0.isEmpty })
    }

    @Test func stopsAtTheFirstPassingTerminalAfterRecordingFailures() async throws {
        let domain = ScriptedDomain(tree: [
            "": [.init(action: "wrong!", q: 0.9), .init(action: "x", q: 0.5)],
            "x": [.init(action: "right!", q: 0.8)],
        ], goals: ["wrong!": 1, "x/right!": 2])
        let result = try await search(domain)
        #expect(domain.log.verified.withLock { $0 } == ["wrong!", "x/right!"])
        #expect(result.best == ["x", "right!"])
        #expect(result.statistics.stop == .solved)
        #expect(result.statistics.terminals == 2)
    }

    @Test func returnsTheTerminalPassingMostChecksWhenNoneSolves() async throws {
        let domain = ScriptedDomain(tree: [
            "": [.init(action: "zero!", q: 0.9), .init(action: "one!", q: 0.1), .init(action: "other!", q: 0.5)],
        ], goals: ["one!": 1])
        let result = try await search(domain)
        #expect(result.best == ["one!"])
        #expect(result.bestVerification?.passed == 1)
    }

    @Test(arguments: [(Aggregation.min, -1.0), (.max, 0.5), (.sum, -0.5), (.last, 0.0)])
    func aggregatesProcessRewardsAlongThePath(agg: Aggregation, expected: Double) async throws {
        // Rewards along root → a → b → c: 0.5, -1, 0.
        let domain = ScriptedDomain(tree: [
            "": [.init(action: "a", q: 0, reward: 0.5)],
            "a": [.init(action: "b", q: 0, reward: -1)],
            "a/b": [.init(action: "c", q: 0, reward: 0)],
        ], goals: [:])
        let result = try await search(domain, agg: agg)
        let c = try #require(result.trace.first { $0.action == "c" })
        #expect(abs(c.g - expected) < 1e-9)
    }

    @Test func lambdaWeighsTheHeuristicAgainstTheProcessReward() async throws {
        // a: good reward, poor Q; b: poor reward, good Q.
        let tree: [String: [ScriptedDomain.Option]] = [
            "": [.init(action: "a", q: 0.1, reward: 0), .init(action: "b", q: 0.9, reward: -0.5)],
        ]
        let noHeuristic = ScriptedDomain(tree: tree, goals: [:])
        _ = try await search(noHeuristic, lambda: 0)
        #expect(noHeuristic.log.expanded.withLock { $0 } == ["", "a", "b"])
        let strongHeuristic = ScriptedDomain(tree: tree, goals: [:])
        let result = try await search(strongHeuristic, lambda: 2)
        #expect(strongHeuristic.log.expanded.withLock { $0 } == ["", "b", "a"])
        let b = try #require(result.trace.first { $0.action == "b" })
        #expect(abs(b.f - (-0.5 + 2 * 0.9)) < 1e-9)
    }

    @Test func dedupesStatesByTheDomainKey() async throws {
        let domain = ScriptedDomain(tree: [
            "": [.init(action: "a", q: 0.9), .init(action: "A ", q: 0.8), .init(action: "c", q: 0.1)],
        ], goals: [:])
        let result = try await search(domain)
        #expect(result.statistics.duplicates == 1)
        #expect(domain.log.expanded.withLock { $0 } == ["", "a", "c"])
    }

    @Test func stopsAtTheExpansionBudget() async throws {
        let domain = ScriptedDomain(tree: Self.chain(depth: 20), goals: [:])
        let result = try await search(domain, budget: Budget(maxExpansions: 3))
        #expect(result.statistics.stop == .expansions)
        #expect(result.statistics.expansions == 3)
        #expect(domain.log.expanded.withLock { $0.count } == 3)
    }

    @Test func stopsAtTheTokenBudget() async throws {
        // Each expansion generates 10 tokens: a 25-token budget allows 3 expansions.
        let domain = ScriptedDomain(tree: Self.chain(depth: 20), goals: [:])
        let result = try await search(domain, budget: Budget(maxGeneratedTokens: 25))
        #expect(result.statistics.stop == .tokens)
        #expect(result.statistics.cost.generatedTokens == 30)
    }

    @Test func stopsAtTheDeadlineOfAnInjectedClock() async throws {
        /// Each policy call takes one second of this clock.
        struct CallClock: SearchClock {
            let log: ScriptedDomain.Log
            func now() -> Double { Double(log.expanded.withLock { $0.count }) }
        }
        let domain = ScriptedDomain(tree: Self.chain(depth: 20), goals: [:])
        let result = try await search(domain, budget: Budget(maxSeconds: 3), clock: CallClock(log: domain.log))
        #expect(result.statistics.stop == .deadline)
        #expect(result.statistics.expansions == 3)
    }

    @Test func cancellationStopsThePolicyCalls() async throws {
        // An endless chain: only cancellation can end this search.
        let domain = ScriptedDomain(tree: [:], goals: [:], endless: true)
        let task = Task { try await search(domain) }
        while domain.log.expanded.withLock({ $0.count }) < 5 { await Task.yield() }
        let atCancel = domain.log.expanded.withLock { $0.count }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        // At most the call already in flight when the cancellation came.
        #expect(domain.log.expanded.withLock { $0.count } <= atCancel + 1)
    }

    @Test func theSameSeedReproducesTheSearchAndExpansionsGetDistinctSeeds() async throws {
        let tree = Self.chain(depth: 6)
        let first = ScriptedDomain(tree: tree, goals: [:])
        let second = ScriptedDomain(tree: tree, goals: [:])
        let other = ScriptedDomain(tree: tree, goals: [:])
        let r1 = try await search(first, seed: 42)
        let r2 = try await search(second, seed: 42)
        _ = try await search(other, seed: 43)
        #expect(r1.trace == r2.trace)
        let seeds = first.log.seeds.withLock { $0 }
        #expect(seeds == second.log.seeds.withLock { $0 })
        #expect(Set(seeds).count == seeds.count)
        #expect(seeds != other.log.seeds.withLock { $0 })
    }

    @Test func theLogprobHeuristicPrefersConfidentPaths() {
        let model = ValueModel<Int, String>.logprob
        let q = model.qValues(0, PathStats(depth: 1, logprobSum: -1, tokens: 2), [
            Proposal(action: "sure", logprobMean: -0.1, logprobSum: -0.2, tokens: 2),
            Proposal(action: "unsure", logprobMean: -2, logprobSum: -4, tokens: 2),
        ])
        #expect(q[0] > q[1])
        #expect(abs(q[0] - exp(-1.2 / 4)) < 1e-12)
        #expect(ValueModel<Int, String>.zero.qValues(0, PathStats(), [Proposal(action: "x", logprobMean: -1, logprobSum: -1, tokens: 1)]) == [0])
    }

    /// A single path 0 → 1 → … → depth.
    static func chain(depth: Int) -> [String: [ScriptedDomain.Option]] {
        var tree: [String: [ScriptedDomain.Option]] = [:]
        var key = ""
        for i in 0..<min(depth, 200) {
            tree[key] = [.init(action: "s\(i)", q: 0.5)]
            key = key.isEmpty ? "s\(i)" : key + "/s\(i)"
        }
        return tree
    }
}

@Suite struct BaselineTests {
    @Test func greedyDrawsOneProgramAtTemperatureZero() async throws {
        let domain = ScriptedDomain(tree: [:], goals: ["p1!": 2], rollout: [["p1!"]])
        let result = try await GreedyDecoding().run(SearchContext(domain: domain, settings: settings()))
        #expect(domain.log.rolloutTemperatures.withLock { $0 } == [0])
        #expect(result.best == ["p1!"])
        #expect(result.statistics.stop == .solved)
    }

    @Test func bestOfNReturnsTheFirstPassingProgram() async throws {
        let domain = ScriptedDomain(tree: [:], goals: ["p2!": 2, "p1!": 1],
                                    rollout: [["p0!"], ["p1!"], ["p2!"], ["p3!"]])
        let result = try await BestOfN().run(SearchContext(domain: domain, settings: settings(seed: 1)))
        #expect(result.best == ["p2!"])
        #expect(domain.log.verified.withLock { $0 } == ["p0!", "p1!", "p2!"])
    }

    @Test func bestOfNKeepsTheBestWhenNonePassesAndHonoursTheTokenBudget() async throws {
        let domain = ScriptedDomain(tree: [:], goals: ["p1!": 1], rollout: [["p0!"], ["p1!"], ["p3!"]])
        let result = try await BestOfN().run(SearchContext(
            domain: domain, settings: settings(budget: Budget(maxGeneratedTokens: 25), seed: 1, samples: 10)))
        // 10 tokens per program: the third draw crosses 25.
        #expect(result.statistics.stop == .tokens)
        #expect(result.statistics.cost.generatedTokens == 30)
        #expect(result.best == ["p1!"])
    }
}

@Suite struct PlannerRegistryTests {
    @Test func everyPlannerIsRegisteredOnceByName() {
        #expect(Planners.names == ["qstar", "greedy", "best-of-n", "mctsr"])
        #expect(Set(Planners.names).count == Planners.all.count)
        for p in Planners.all { #expect(Planners.named(p.name)?.name == p.name) }
        #expect(Planners.named("nope") == nil)
    }

    @Test func progressCarriesTheBestProgramSoFar() async throws {
        let domain = ScriptedDomain(tree: [
            "": [.init(action: "half!", q: 0.9), .init(action: "x", q: 0.5)],
            "x": [.init(action: "full!", q: 0.8)],
        ], goals: ["half!": 1, "x/full!": 2])
        let reports = Mutex<[SearchProgress<[String]>]>([])
        _ = try await AStarSearch().run(SearchContext(domain: domain, value: qFromLogprob(), settings: settings(),
                                                      progress: { p in reports.withLock { $0.append(p) } }))
        let seen = reports.withLock { $0 }
        #expect(seen.first?.best == ["half!"])
        #expect(seen.first?.bestVerification?.passed == 1)
        #expect(seen.last?.best == ["x", "full!"])
        #expect(seen.last?.programsTried == 2)
    }
}

@Suite struct SplitMixTests {
    @Test func derivedSeedsAreStableAndDistinct() {
        #expect(SplitMix64.mix(7, 0) == SplitMix64.mix(7, 0))
        let seeds = (0..<1000).map { SplitMix64.mix(7, UInt64($0)) }
        #expect(Set(seeds).count == 1000)
        var g = SplitMix64(seed: 7)
        let a = (0..<4).map { _ in g.next() }
        var h = SplitMix64(seed: 7)
        #expect(a == (0..<4).map { _ in h.next() })
    }
}

/// Q* with continuations: greedy first, lazy branching where the policy was
/// unsure, outcomes backed up, revisions, and the anytime ledger.
@Suite struct ContinuationSearchTests {
    func tree(_ domain: ScriptedDomain, budget: Budget = Budget(maxGeneratedTokens: 10_000), _ change: (inout SearchSettings) -> Void = { _ in })
        async throws -> SearchResult<[String]> {
        var s = SearchSettings()
        s.budget = budget
        s.revise = 0
        s.costWeight = 0
        // The mechanisms inside one program are this suite's subject; tests of the other rules say so.
        s.branching = .step
        change(&s)
        return try await AStarSearch().run(SearchContext(domain: domain, value: .logprob, settings: s))
    }

    @Test func theFirstExpansionIsGreedyAndCostsOnlyGreedysTokens() async throws {
        let domain = ScriptedDomain(tree: [:], goals: ["a/b/c!": 2], paths: ["": [["a", "b", "c!"]]])
        let result = try await tree(domain)
        #expect(domain.log.rolloutTemperatures.withLock { $0 } == [0])
        #expect(result.statistics.stop == .solved && result.best == ["a", "b", "c!"])
        #expect(result.statistics.cost.generatedTokens == 30 && result.statistics.cost.llmCalls == 1)
    }

    @Test func lazyExpansionDrawsNoSiblingItDoesNotUse() async throws {
        let domain = ScriptedDomain(tree: [:], goals: ["a/y!": 2], paths: [
            "": [["a", "b", "c!"], ["a", "x!"]], "a": [["x!"], ["y!"]], "a/b": [["d!"]],
        ], stepLogprob: ["a": -0.05, "b": -2, "c!": -0.1])
        let result = try await tree(domain)
        #expect(result.statistics.stop == .solved)
        // One episode per call, and every step drawn is on an episode that was judged.
        #expect(domain.log.continued.withLock { $0.map(\.n) }.allSatisfy { $0 == 1 })
        let terminals = Set(result.trace.filter(\.terminal).map(\.id))
        for node in result.trace where node.id != 0 {
            var reaches = terminals.contains(node.id)
            if !reaches { reaches = result.trace.contains { $0.parent == node.id } }
            #expect(reaches, "node \(node.action) leads nowhere")
        }
    }

    @Test func itBranchesWhereThePolicyWasUnsure() async throws {
        // Greedy a → b → c!: sure of a (p ≈ 0.95), unsure of b (p ≈ 0.14), so the next draw starts at a.
        let domain = ScriptedDomain(tree: [:], goals: ["a/x!": 2], paths: [
            "": [["a", "b", "c!"], ["z!"]], "a": [["x!"]], "a/b": [["d!"]],
        ], stepLogprob: ["a": -0.05, "b": -2, "c!": -0.05])
        let result = try await tree(domain) { $0.rolloutWeight = 0 }
        #expect(domain.log.continued.withLock { $0.map(\.key) } == ["", "a"])
        #expect(result.best == ["a", "x!"])
        // Without the unexplored mass every node looks alike and the search goes elsewhere first.
        let flat = ScriptedDomain(tree: [:], goals: ["a/x!": 2], paths: domain.paths, stepLogprob: domain.stepLogprob)
        _ = try await tree(flat) { $0.uncertainty = 0; $0.rolloutWeight = 0 }
        #expect(flat.log.continued.withLock { $0.map(\.key) }.prefix(2) != ["", "a"])
    }

    @Test func aCheapBranchDeepInAProgramBeatsAnEquallyUnsureOneAtTheRoot() async throws {
        // Greedy r → s → t → u!: as unsure of r (p ≈ 0.4) as of t (p ≈ 0.4). An alternative to t
        // (drawn at r/s) costs two steps, an alternative to r the whole episode: per token, r/s wins.
        let paths: [String: [[String]]] = ["": [["r", "s", "t", "u!"], ["w!"]], "r/s": [["x!"]]]
        let logprobs = ["r": -0.9, "s": -0.01, "t": -0.9, "u!": -0.01]
        let costed = ScriptedDomain(tree: [:], goals: ["r/s/x!": 2], paths: paths, stepLogprob: logprobs)
        _ = try await tree(costed) { $0.costWeight = 1; $0.rolloutWeight = 0 }
        #expect(costed.log.continued.withLock { $0.map(\.key) }.dropFirst().first == "r/s")
        let blind = ScriptedDomain(tree: [:], goals: ["r/s/x!": 2], paths: paths, stepLogprob: logprobs)
        _ = try await tree(blind) { $0.costWeight = 0; $0.rolloutWeight = 0 }
        #expect(blind.log.continued.withLock { $0.map(\.key) }.dropFirst().first == "")
    }

    @Test func verifiedOutcomesPullTheSearchTowardsNearMisses() async throws {
        // Two first attempts: p0 fails far (credit 0), q0 fails close (credit 0.8); with μ > 0
        // the search branches under q before p, though the policy liked p better.
        let paths: [String: [[String]]] = [
            "": [["p", "p0!"], ["q", "q0!"]], "p": [["p1!"]], "q": [["q1!"]],
        ]
        let logprobs = ["p": -0.1, "q": -0.3, "p0!": -1.5, "q0!": -1.5]
        let goals = ["q/q1!": 2, "p/p1!": 2]
        let backed = ScriptedDomain(tree: [:], goals: goals, credit: ["p/p0!": 0, "q/q0!": 0.8], paths: paths, stepLogprob: logprobs)
        _ = try await tree(backed) { $0.greedyFirst = false; $0.branchSamples = 2; $0.rolloutWeight = 0.9 }
        #expect(backed.log.continued.withLock { $0.map(\.key) }.dropFirst().first == "q")
        let blind = ScriptedDomain(tree: [:], goals: goals, credit: ["p/p0!": 0, "q/q0!": 0.8], paths: paths, stepLogprob: logprobs)
        _ = try await tree(blind) { $0.greedyFirst = false; $0.branchSamples = 2; $0.rolloutWeight = 0 }
        #expect(blind.log.continued.withLock { $0.map(\.key) }.dropFirst().first == "p")
    }

    /// The coverage failure measured on MBPP (BENCHMARKS.md): after greedy fails, `.step`
    /// branching weighs the root by its next step only, which greedy already took with p 0.6,
    /// so it keeps drawing under that step where unsure steps are left. `.episode` branching
    /// sees that the greedy program holds only p ≈ 0.17 of the root's whole-program mass, and
    /// that the root's prior is the best on the frontier, so it starts over sooner.
    @Test func episodeBranchingWeighsTheRootByWholePrograms() async throws {
        let paths: [String: [[String]]] = [
            "": [["a", "b", "c!"], ["z", "z!"]],
            "a": (1...6).map { ["b\($0)", "c\($0)!"] },
        ]
        var logprobs = ["a": -0.5, "b": -1.2, "c!": -0.05, "z": -1, "z!": -0.05]
        for i in 1...6 { logprobs["b\(i)"] = -3; logprobs["c\(i)!"] = -0.05 }
        func run(_ branching: Branching) async throws -> (keys: [String], result: SearchResult<[String]>) {
            let domain = ScriptedDomain(tree: [:], goals: ["z/z!": 2], paths: paths, stepLogprob: logprobs)
            let result = try await tree(domain) {
                $0.branching = branching
                $0.costWeight = 0.5
            }
            return (domain.log.continued.withLock { $0.map(\.key) }, result)
        }
        let step = try await run(.step)
        #expect(step.keys.prefix(3) == ["", "a", "a"], "\(step.keys)")
        let episode = try await run(.episode)
        #expect(episode.keys == ["", "a", ""], "\(episode.keys)")
        #expect(episode.result.best == ["z", "z!"] && step.result.best == ["z", "z!"])
        #expect(episode.result.statistics.cost.generatedTokens < step.result.statistics.cost.generatedTokens)
        // `.root` never draws from inside a program: the second draw is already fresh.
        let root = try await run(.root)
        #expect(root.keys == ["", ""], "\(root.keys)")
        #expect(root.result.best == ["z", "z!"])
    }

    /// With `.root` branching and a second framing, every draw after the greedy
    /// ones starts at a framing's root, and the search keeps drawing where the
    /// programs came closer to passing.
    @Test func rootBranchingDrawsOnlyFreshStartsAndFavoursTheCloserFraming() async throws {
        // Under the root framing programs fail outright; under "alt" they pass half the checks, and the fourth passes.
        let paths: [String: [[String]]] = [
            "": (1...6).map { ["r\($0)", "r\($0)!"] },
            "alt": (1...6).map { ["a\($0)", "a\($0)!"] },
        ]
        var goals: [String: Int] = [:], logprobs: [String: Double] = [:]
        for i in 1...6 {
            goals["alt/a\(i)/a\(i)!"] = i == 4 ? 2 : 1
            (logprobs["r\(i)"], logprobs["a\(i)"]) = (-3, -3)  // many programs: no start is exhausted by a few draws
        }
        let domain = ScriptedDomain(tree: [:], goals: goals, paths: paths, stepLogprob: logprobs, framings: ["alt"])
        let result = try await tree(domain) {
            $0.branching = .root
            $0.costWeight = 0
        }
        let keys = domain.log.continued.withLock { $0.map(\.key) }
        #expect(Set(keys).isSubset(of: ["", "alt"]), "\(keys)")
        #expect(result.best == ["alt", "a4", "a4!"])
        // Greedy under each framing, then the closer framing's draws: the root's second program is never needed.
        #expect(keys == ["", "alt", "alt", "alt", "alt"], "\(keys)")
    }

    /// With `.episode` branching a node whose new draws keep failing loses its appeal (its
    /// prior counts as (1−μ)/μ episodes among its outcomes); with `.step` its value never
    /// falls below (1−μ)·v, so the policy's favourite keeps every draw while its mass lasts.
    @Test func episodeBranchingDiscountsRepeatedFailures() async throws {
        let paths: [String: [[String]]] = [
            "": [["p", "p0!"], ["q", "q0!"]], "p": (1...8).map { ["p\($0)!"] }, "q": [["q1!"]],
        ]
        var logprobs = ["p": -0.1, "q": -3, "p0!": -1.5, "q0!": -1.5, "q1!": -4]
        for i in 1...8 { logprobs["p\(i)!"] = -4 }
        func keys(_ branching: Branching) async throws -> [String] {
            let domain = ScriptedDomain(tree: [:], goals: ["q/q1!": 2], paths: paths, stepLogprob: logprobs)
            let result = try await tree(domain) { $0.greedyFirst = false; $0.branchSamples = 2; $0.branching = branching }
            #expect(result.best == ["q", "q1!"])
            return domain.log.continued.withLock { $0.map(\.key) }
        }
        #expect(try await keys(.episode) == ["", "p", "q"])
        let s = try await keys(.step); #expect(s.prefix(4) == ["", "p", "p", "p"], "\(s)")
    }

    /// Measured on MBPP (issue 13): when every node's draws keep repeating what the tree has,
    /// Q* used to stop with budget left and a failing program. It now starts over from the
    /// root, hotter each time, until a program passes, the budget ends, or T reaches 1.4.
    @Test func aSpentSearchStartsOverHotterInsteadOfGivingUp() async throws {
        let repeating = ScriptedDomain(tree: [:], goals: ["b!": 2], paths: ["": [["a!"], ["a!"], ["a!"], ["a!"], ["b!"]]])
        let result = try await tree(repeating)
        #expect(result.statistics.stop == .solved && result.best == ["b!"])
        let temperatures = repeating.log.rolloutTemperatures.withLock { $0 }
        #expect(temperatures.count == 5 && temperatures.prefix(4) == [0, 0.8, 0.8, 0.8])
        #expect(abs(temperatures[4] - 1.0) < 1e-9)
        // A policy that never writes anything else: four rounds of heat, then the search ends.
        let stuck = ScriptedDomain(tree: [:], goals: [:], paths: ["": [["a!"]]])
        let ended = try await tree(stuck)
        #expect(ended.statistics.stop == .exhausted)
        let hottest = try #require(stuck.log.rolloutTemperatures.withLock { $0 }.max())
        #expect(abs(hottest - 1.4) < 1e-9)
        #expect(stuck.log.rolloutTemperatures.withLock { $0 }.count == 1 + 3 * 4)
    }

    @Test func aFailedEpisodeIsWrittenAgainWithItsFeedback() async throws {
        let domain = ScriptedDomain(tree: [:], goals: ["retry wrong!/fixed!": 2], credit: ["wrong!": 0.5],
                                    paths: ["": [["wrong!"]], "retry wrong!": [["fixed!"]]],
                                    stepLogprob: ["wrong!": -0.01], revisable: true)
        let result = try await tree(domain) { $0.revise = 10 }
        #expect(domain.log.continued.withLock { $0.map(\.key) } == ["", "retry wrong!"])
        #expect(result.best == ["retry wrong!", "fixed!"])
        // The retry's first draw is greedy too.
        #expect(domain.log.rolloutTemperatures.withLock { $0 } == [0, 0])
    }

    @Test func anotherFramingIsAnAttemptOfItsOwnWhoseFirstDrawIsGreedy() async throws {
        let paths = ["": [["wrong!"]], "examples": [["right!"]]]
        let domain = ScriptedDomain(tree: [:], goals: ["examples/right!": 2], paths: paths, framings: ["examples"])
        let result = try await tree(domain)
        // The root's greedy episode first, then the other framing's, before any deeper draw.
        #expect(domain.log.continued.withLock { $0.map(\.key) } == ["", "examples"])
        #expect(domain.log.rolloutTemperatures.withLock { $0 } == [0, 0])
        #expect(result.best == ["examples", "right!"])
        #expect(result.trace[1].action == "⟲ framing: examples" && result.trace[1].parent == 0)
        let judged = result.trace.filter { $0.verification != nil }
        #expect(judged.map(\.drawnFrom) == [0, 1] && judged.map(\.attempt) == [nil, 1])
        // Without it the same policy never leaves the root's attempt.
        let alone = ScriptedDomain(tree: [:], goals: ["examples/right!": 2], paths: paths)
        let stuck = try await tree(alone, budget: Budget(maxGeneratedTokens: 40))
        #expect(stuck.statistics.stop != .solved && alone.log.continued.withLock { $0.allSatisfy { $0.key == "" } })
    }

    @Test func bestOfNTakesItsCallsFromEachFramingInTurn() async throws {
        let domain = ScriptedDomain(tree: [:], goals: [:], paths: ["": [["wrong!"]], "examples": [["odd!"]]], framings: ["examples"])
        var s = SearchSettings()
        s.samples = 3
        s.budget = Budget(maxGeneratedTokens: 10_000)
        _ = try await BestOfN().run(SearchContext(domain: domain, settings: s))
        #expect(domain.log.continued.withLock { $0.map(\.key) } == ["", "examples", ""])
        #expect(domain.log.verified.withLock { $0 } == ["wrong!", "examples/odd!", "wrong!"])
        // Greedy decoding answers from the root's framing alone.
        let greedy = ScriptedDomain(tree: [:], goals: [:], paths: ["": [["wrong!"]], "examples": [["odd!"]]], framings: ["examples"])
        _ = try await GreedyDecoding().run(SearchContext(domain: greedy, settings: s))
        #expect(greedy.log.continued.withLock { $0.map(\.key) } == [""])
    }

    @Test func aJudgedEpisodeRemembersWhereItWasDrawn() async throws {
        // The policy is sure of "a" and unsure of what follows: the second draw starts after "a".
        let domain = ScriptedDomain(tree: [:], goals: ["a/d!": 2], paths: ["": [["a", "b!"]], "a": [["d!"]]],
                                    stepLogprob: ["a": -0.01, "b!": -2])
        let result = try await tree(domain)
        let judged = result.trace.filter { $0.verification != nil }
        #expect(result.best == ["a", "d!"])
        #expect(judged.map(\.drawnFrom) == [0, 1] && result.trace[1].action == "a" && judged.allSatisfy { $0.attempt == nil })
    }

    /// One run at a large budget answers for every smaller one: the answer and
    /// the tokens it records at B are those of a run limited to B.
    @Test(arguments: [15, 35, 60, 95])
    func theAnytimeLedgerMatchesABudgetLimitedRun(budget: Int) async throws {
        func domain() -> ScriptedDomain {
            ScriptedDomain(tree: [:], goals: ["a/b/e!": 2, "a/f!": 1], credit: ["a/b/c!": 0.2, "a/d!": 0.4],
                           paths: ["": [["a", "b", "c!"], ["g!"]], "a": [["d!"], ["f!"], ["b", "e!"]], "a/b": [["e!"]]],
                           stepLogprob: ["a": -0.2, "b": -1, "c!": -0.5])
        }
        let full = try await tree(domain(), budget: Budget(maxGeneratedTokens: 10_000))
        let limited = try await tree(domain(), budget: Budget(maxGeneratedTokens: budget))
        let answer = full.answers.last { $0.tokensBefore < budget }?.node
        let spent = full.calls.last { $0.tokensBefore < budget }?.tokensAfter ?? 0
        #expect(answer.map { full.trace[$0].action } == limited.bestNode.map { limited.trace[$0].action })
        #expect(answer.flatMap { full.trace[$0].verification } == limited.bestVerification)
        #expect(spent == limited.statistics.cost.generatedTokens)
    }
}

/// A scripted domain with one part changed: everything it does not define is `base`'s.
protocol ScriptedVariant: PlanningDomain where State == [String], Action == String {
    var base: ScriptedDomain { get }
}

extension ScriptedVariant {
    var root: [String] { base.root }
    func propose(from state: [String], k: Int, seed: UInt64) async throws -> Expansion<String> {
        try await base.propose(from: state, k: k, seed: seed)
    }
    func continuations(from state: [String], n: Int, temperature: Double, seed: UInt64) async throws -> Continuations<String> {
        try await base.continuations(from: state, n: n, temperature: temperature, seed: seed)
    }
    func apply(_ action: String, to state: [String]) -> [String] { base.apply(action, to: state) }
    func processReward(of state: [String]) -> Double { base.processReward(of: state) }
    func isTerminal(_ state: [String]) -> Bool { base.isTerminal(state) }
    func key(of state: [String]) -> String { base.key(of: state) }
    func verify(_ state: [String]) async throws -> Verification { try await base.verify(state) }
    func describe(_ action: String) -> String { action }
}

/// A scripted domain whose finished episodes have behaviours.
struct BehavingDomain: ScriptedVariant {
    var base: ScriptedDomain
    var behaviours: [String: String]
    func behaviour(of state: [String]) async throws -> Behaviour? {
        behaviours[key(of: state)].map { Behaviour(fingerprint: $0, cost: Cost(verifierRuns: 1)) }
    }
}

@Suite struct SelectionTests {
    @Test func collectingSeveralPassingProgramsAnswersWithTheBehaviourMostShare() async throws {
        // Four programs pass the visible checks; three of them behave alike on the probes.
        let base = ScriptedDomain(tree: [:], goals: ["a!": 2, "b!": 2, "c!": 2, "d!": 2],
                                  paths: ["": [["a!"], ["b!"], ["c!"], ["d!"]]], stepLogprob: ["a!": -2, "b!": -2, "c!": -2, "d!": -2])
        let domain = BehavingDomain(base: base, behaviours: ["a!": "odd", "b!": "x", "c!": "x", "d!": "x"])
        var s = SearchSettings()
        s.select = 4
        s.greedyFirst = false
        s.costWeight = 0
        let result = try await AStarSearch().run(SearchContext(domain: domain, settings: s))
        #expect(result.statistics.stop == .solved && result.statistics.terminals == 4)
        #expect(result.best == ["b!"])
        // While only the first had passed, it was the answer: the ledger says so.
        #expect(result.answers.first.map { result.trace[$0.node].action } == "a!")
        // Each judged episode keeps the policy's mean log-probability of it and its behaviour.
        let judged = result.trace.filter { $0.verification != nil }
        #expect(judged.map(\.behaviour) == ["odd", "x", "x", "x"])
        #expect(judged.allSatisfy { $0.logprob.map { abs($0 + 0.2) < 1e-9 } ?? false })
        s.select = 1
        let first = try await AStarSearch().run(SearchContext(domain: BehavingDomain(base: ScriptedDomain(
            tree: [:], goals: base.goals, paths: base.paths, stepLogprob: base.stepLogprob), behaviours: domain.behaviours), settings: s))
        #expect(first.best == ["a!"] && first.statistics.terminals == 1)
    }

    @Test func bestOfNCollectsSeveralPassingProgramsAndAnswersByAgreement() async throws {
        // Samples in order: a fails, b passes alone in its behaviour, c and d pass and agree, e is never drawn.
        let base = ScriptedDomain(tree: [:], goals: ["b!": 2, "c!": 2, "d!": 2, "e!": 2],
                                  rollout: [["a!"], ["b!"], ["c!"], ["d!"], ["e!"]])
        let domain = BehavingDomain(base: base, behaviours: ["b!": "odd", "c!": "x", "d!": "x", "e!": "x", "a!": "never probed"])
        var s = SearchSettings()
        s.select = 3
        s.samples = 10
        let result = try await BestOfN().run(SearchContext(domain: domain, settings: s))
        #expect(result.statistics.stop == .solved && result.statistics.terminals == 4)
        #expect(result.best == ["c!"])
        // Probes ran on the three passing programs only, and their cost is booked.
        #expect(result.statistics.cost.verifierRuns == 3)
        // The ledger's answers: nothing passing, then b alone, then b (one each), then c's behaviour, shared by two.
        #expect(result.answers.map { result.trace[$0.node].action } == ["sample 1", "sample 2", "sample 2", "sample 3"])
        // Every judged program carries its log-probability; the passing ones their behaviour.
        let judged = result.trace.filter { $0.verification != nil }
        #expect(judged.allSatisfy { $0.logprob != nil })
        #expect(judged.map(\.behaviour) == [nil, "odd", "x", "x"])
        // With select 1 it stops at the first pass and probes nothing.
        s.select = 1
        let first = try await BestOfN().run(SearchContext(domain: BehavingDomain(base: ScriptedDomain(
            tree: [:], goals: base.goals, rollout: base.rollout), behaviours: domain.behaviours), settings: s))
        #expect(first.best == ["b!"] && first.statistics.terminals == 2 && first.statistics.cost.verifierRuns == 0)
        #expect(first.trace.allSatisfy { $0.behaviour == nil })
    }

    @Test func aProgramThatBehavesLikeAKnownOneCountsAsARepeat() async throws {
        // Under "r", draws keep producing new code with the same behaviour; with dedup the search leaves r sooner.
        let paths: [String: [[String]]] = ["": [["r", "x1!"], ["z!"]], "r": [["x2!"], ["x3!"], ["x4!"], ["y!"]]]
        let behaviours = ["r/x1!": "same", "r/x2!": "same", "r/x3!": "same", "r/x4!": "same", "z!": "other", "r/y!": "third"]
        func run(dedup: Bool) async throws -> [String] {
            let base = ScriptedDomain(tree: [:], goals: ["z!": 2], paths: paths,
                                      stepLogprob: ["r": -0.5, "x1!": -1.5, "x2!": -3, "x3!": -3, "x4!": -3, "y!": -3])
            var s = SearchSettings()
            s.dedup = dedup
            s.costWeight = 0
            s.rolloutWeight = 0
            s.branching = .step
            _ = try await AStarSearch().run(SearchContext(domain: BehavingDomain(base: base, behaviours: behaviours), settings: s))
            return base.log.continued.withLock { $0.map(\.key) }
        }
        let plain = try await run(dedup: false), deduped = try await run(dedup: true)
        #expect(deduped.count < plain.count, "\(deduped) vs \(plain)")
    }
}
