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
    var rollout: [[String]] = []
    /// Every state not in `tree` offers one more step: an endless chain.
    var endless = false
    let log = Log()

    final class Log: Sendable {
        let expanded = Mutex<[String]>([])
        let seeds = Mutex<[UInt64]>([])
        let verified = Mutex<[String]>([])
        let rolloutTemperatures = Mutex<[Double]>([])
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

    func rollouts(from state: [String], n: Int, temperature: Double, seed: UInt64) async throws -> RolloutBatch<[String]> {
        log.rolloutTemperatures.withLock { $0.append(temperature) }
        let drawn = log.rolloutTemperatures.withLock { $0.count } - 1
        var cost = Cost()
        cost.llmCalls = 1
        cost.generatedTokens = 50 * n
        let picked = (0..<n).map { rollout[(drawn * n + $0) % rollout.count] }
        return RolloutBatch(rollouts: picked.map { Rollout(state: $0, logprobMean: -0.1, tokens: 50) }, cost: cost)
    }

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
        return Verification(passed: goals[key(of: state)] ?? 0, total: 2, outcome: goals[key(of: state)] == 2 ? "passed" : "failed")
    }

    func describe(_ action: String) -> String { action }
}

/// The Q-value of a proposal is carried in its log-probability: exp(logprob) = q.
func qFromLogprob<S: Sendable>() -> ValueModel<S, String> {
    ValueModel(name: "scripted") { _, _, proposals in proposals.map { exp($0.logprobMean) } }
}

func settings(lambda: Double = 1, agg: Aggregation = .min, budget: Budget = Budget(), k: Int = 4, seed: UInt64 = 7,
              samples: Int = 8) -> SearchSettings {
    var s = SearchSettings()
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
        final class StepClock: SearchClock {
            let t = Mutex<Double>(0)
            func now() -> Double { t.withLock { $0 += 1; return $0 } }
        }
        let domain = ScriptedDomain(tree: Self.chain(depth: 20), goals: [:])
        // Started at 1; each budget check reads the clock once more.
        let result = try await search(domain, budget: Budget(maxSeconds: 4), clock: StepClock())
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
        var oneAtATime = BestOfN()
        oneAtATime.batch = 1
        let result = try await oneAtATime.run(SearchContext(domain: domain, settings: settings(seed: 1)))
        #expect(result.best == ["p2!"])
        #expect(domain.log.verified.withLock { $0 } == ["p0!", "p1!", "p2!"])
    }

    @Test func bestOfNKeepsTheBestWhenNonePassesAndHonoursTheTokenBudget() async throws {
        let domain = ScriptedDomain(tree: [:], goals: ["p1!": 1], rollout: [["p0!"], ["p1!"], ["p3!"]])
        var oneAtATime = BestOfN()
        oneAtATime.batch = 1
        let result = try await oneAtATime.run(SearchContext(
            domain: domain, settings: settings(budget: Budget(maxGeneratedTokens: 120), seed: 1, samples: 10)))
        // 50 tokens per program: the third draw crosses 120.
        #expect(result.statistics.stop == .tokens)
        #expect(result.statistics.cost.generatedTokens == 150)
        #expect(result.best == ["p1!"])
    }
}

@Suite struct PlannerRegistryTests {
    @Test func everyPlannerIsRegisteredOnceByName() {
        #expect(Planners.names == ["qstar", "greedy", "best-of-n"])
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
