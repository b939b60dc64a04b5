import Basics
import Foundation
import Synchronization
import Testing
@testable import QStar

/// A scripted self-refinement problem: an episode is a name; the greedy
/// episode is "v0"; refining an episode gives the next name its script lists
/// (cycling); the policy's self-scores are scripted per episode.
struct RefiningDomain: PlanningDomain {
    /// Episode → what each refinement of it gives, in order (cycling).
    var refinements: [String: [String]] = [:]
    /// Episodes that pass both checks; others pass none.
    var passing: Set<String> = []
    /// Graded credit of failures (default 0.2).
    var credit: [String: Double] = [:]
    /// Self-scores per episode, handed out in order (cycling); nil is an answer without a score.
    var scores: [String: [Double?]] = [:]
    var offersPlaceholder = false
    let log = Log()

    final class Log: Sendable {
        let verified = Mutex<[String]>([])
        /// The episode criticised and the outcome the critic was told.
        let critiqued = Mutex<[(episode: String, outcome: String?)]>([])
        let evaluated = Mutex<[(episode: String, n: Int)]>([])
        let draws = Mutex<[String: Int]>([:])
    }

    var root: [String] { [] }
    func propose(from state: [String], k: Int, seed: UInt64) async throws -> Expansion<String> {
        Expansion(proposals: [], cost: Cost())
    }
    func continuations(from state: [String], n: Int, temperature: Double, seed: UInt64) async throws -> Continuations<String> {
        Continuations(paths: [[Proposal(action: "v0", logprobMean: -0.1, logprobSum: -0.1, tokens: 10)]], cost: Self.cost(10))
    }
    func apply(_ action: String, to state: [String]) -> [String] { state + [action] }
    func processReward(of state: [String]) -> Double { 0 }
    func isTerminal(_ state: [String]) -> Bool { !state.isEmpty }
    func key(of state: [String]) -> String { state.joined(separator: "/") }
    func describe(_ action: String) -> String { action }

    func verify(_ state: [String]) async throws -> Verification {
        let name = state.last!
        log.verified.withLock { $0.append(name) }
        let passed = passing.contains(name)
        return Verification(passed: passed ? 2 : 0, total: 2, outcome: passed ? "passed" : "failed",
                            credit: passed ? 1 : credit[name] ?? 0.2)
    }

    func placeholder() -> [String]? { offersPlaceholder ? ["I don't know"] : nil }

    func critique(_ state: [String], after verification: Verification?, seed: UInt64) async throws -> Critique {
        log.critiqued.withLock { $0.append((state.last!, verification?.outcome)) }
        return Critique(text: "fix \(state.last!)", feedback: verification?.outcome, cost: Self.cost(5))
    }

    func refine(_ state: [String], following critique: Critique, seed: UInt64) async throws -> (state: [String], cost: Cost) {
        let name = state.last!
        let script = refinements[name] ?? [name + "'"]
        let i = log.draws.withLock { d in defer { d[name, default: 0] += 1 }; return d[name, default: 0] }
        return ([script[i % script.count]], Self.cost(10))
    }

    func selfEvaluate(_ state: [String], n: Int, seed: UInt64) async throws -> (scores: [Double?], cost: Cost) {
        let name = state.last!
        log.evaluated.withLock { $0.append((name, n)) }
        let script = scores[name] ?? [0]
        let first = log.draws.withLock { d in defer { d["eval " + name, default: 0] += n }; return d["eval " + name, default: 0] }
        return ((0..<n).map { script[(first + $0) % script.count] }, Self.cost(3 * n))
    }

    static func cost(_ tokens: Int) -> Cost {
        var c = Cost()
        c.llmCalls = 1
        c.generatedTokens = tokens
        return c
    }
}

func mctsr(_ domain: RefiningDomain, budget: Int = 1000, _ change: (inout SearchSettings) -> Void = { _ in })
    async throws -> SearchResult<[String]> {
    var s = SearchSettings()
    s.budget = Budget(maxGeneratedTokens: budget)
    change(&s)
    return try await MCTSr().run(SearchContext(domain: domain, settings: s))
}

@Suite struct MCTSrTests {
    /// The episode's Q value as the trace records it.
    func q(_ result: SearchResult<[String]>, _ action: String) -> Double? {
        result.trace.first { $0.action == action || $0.action.hasSuffix(action) }?.f
    }

    @Test func aFailedGreedyAnswerIsCriticisedWithItsOutcomeAndRefinedUntilOnePasses() async throws {
        let d = RefiningDomain(refinements: ["v0": ["v1"], "v1": ["v2"]], passing: ["v2"])
        let r = try await mctsr(d)
        #expect(r.best == ["v2"])
        #expect(r.statistics.stop == .solved)
        #expect(d.log.verified.withLock { $0 } == ["v0", "v1", "v2"])
        // The critic is told what the verifier said.
        #expect(d.log.critiqued.withLock { $0.map(\.outcome) } == ["failed", "failed"])
        // The answer came from refining v1, which came from refining v0.
        let node = r.trace[r.bestNode!]
        #expect(r.trace[node.parent!].action.hasPrefix("refined after the critique: fix v0"))
        #expect(node.action == "refined after the critique: fix v1")
    }

    @Test func aPassingGreedyAnswerEndsTheSearchAtGreedysCost() async throws {
        let d = RefiningDomain(passing: ["v0"])
        let r = try await mctsr(d)
        #expect(r.best == ["v0"])
        #expect(r.statistics.cost.generatedTokens == 10)
        #expect(d.log.evaluated.withLock { $0.isEmpty })
    }

    /// Q = ½(min R + mean R); a score above 95 loses 50; an answer without a score is asked again once.
    @Test func theValueIsHalfTheWorstPlusHalfTheMeanOfSuppressedSelfScores() async throws {
        let d = RefiningDomain(refinements: ["v0": ["v1"]], scores: ["v0": [80, 20, nil, 99]])
        let r = try await mctsr(d, budget: 40)
        // v0: 80, 20, nil → asked once more for one → 99 − 50 = 49.
        #expect(d.log.evaluated.withLock { $0.filter { $0.episode == "v0" }.map(\.n) } == [3, 1])
        let own = try #require(r.trace.first { $0.action == "greedy answer" }?.h)
        #expect(abs(own - 0.5 * (20 + (80.0 + 20 + 49) / 3)) < 1e-9)
    }

    @Test func withoutSelfScoresTheValueIsTheGradedOutcome() async throws {
        let d = RefiningDomain(refinements: ["v0": ["v1"], "v1": ["v2"]], credit: ["v0": 0.3, "v1": 0.45])
        let r = try await mctsr(d, budget: 60) { $0.rewardSamples = 0 }
        #expect(d.log.evaluated.withLock { $0.isEmpty })
        #expect(r.trace.first { $0.action == "greedy answer" }?.h == 30)
        #expect(r.trace.first { $0.action == "refined after the critique: fix v0" }?.h == 45)
    }

    /// Q'(a) = ½(Q(a) + max child Q), up the tree; the trace's f is the backed-up value.
    @Test func childValuesAreBackedUpToTheRoot() async throws {
        let d = RefiningDomain(refinements: ["v0": ["v1"], "v1": ["v2"]], credit: ["v0": 0.1, "v1": 0.5, "v2": 0.9])
        let r = try await mctsr(d, budget: 40) { $0.rewardSamples = 0 }
        let v0 = try #require(r.trace.first { $0.action == "greedy answer" })
        let v1 = try #require(r.trace.first { $0.action == "refined after the critique: fix v0" })
        // v1 (50) refined into v2 (90): v1 → 70; v0 got v1 (10 → 30), then v1's new 70 → 50.
        #expect(v1.f == 70)
        #expect(v0.f == 50)
    }

    @Test func selectionFollowsUCTAndSkipsFullyExpandedAnswers() {
        typealias Node = MCTSr.Node
        // Root (Q 10) with a better child (Q 40) and a worse one (Q 0).
        var nodes = [Node(id: 1, parent: nil, children: [1, 2], q: 10, visits: 3),
                     Node(id: 2, parent: 0, q: 40), Node(id: 3, parent: 0, q: 0)]
        // The root has a child valued above it: fully expanded, so not chosen.
        #expect(MCTSr.select(nodes, c: 1, maxChildren: 3) == 1)
        // Between children of equal value, the less visited is explored.
        nodes[1].q = 0
        nodes[1].visits = 5
        #expect(MCTSr.select(nodes, c: 1, maxChildren: 2) == 2)
        // A root with room for more refinements and children no better than it
        // is refined again (its UCT is its own value: it has no parent).
        #expect(MCTSr.select(nodes, c: 1, maxChildren: 3) == 0)
        // When every answer is fully expanded, the root is refined again.
        #expect(MCTSr.select(nodes, c: 1, maxChildren: 0) == 0)
        // UCT itself: Q + c·√(ln(N_parent + 1) / (N + ε)).
        #expect(abs(MCTSr.uct(nodes, 2, c: 2) - (0 + 2 * (log(4.0) / (1 + MCTSr.epsilon)).squareRoot())) < 1e-12)
    }

    @Test func fullScoresAreSuppressedAndScoresClamped() {
        #expect(MCTSr.suppressed(100) == 50)
        #expect(MCTSr.suppressed(96) == 46)
        #expect(MCTSr.suppressed(95) == 95)
        #expect(MCTSr.suppressed(250) == 50)
        #expect(MCTSr.suppressed(-250) == -100)
        // The exploration constant grows with the spread of the values.
        #expect(MCTSr.exploration(1.4, [0]) == 1.4)
        #expect(MCTSr.exploration(1.4, [0, 0.5]) == 1.4)
        #expect(abs(MCTSr.exploration(1.4, [-50, 50]) - 70) < 1e-9)
    }

    @Test func aPlaceholderRootIsCriticisedWithoutAVerdictAndNeverReturned() async throws {
        let d = RefiningDomain(refinements: ["I don't know": ["v1"]], offersPlaceholder: true)
        let r = try await mctsr(d, budget: 30) { $0.placeholderRoot = true; $0.rewardSamples = 0 }
        #expect(d.log.critiqued.withLock { $0.first?.episode } == "I don't know")
        #expect(d.log.critiqued.withLock { $0.first?.outcome } == nil)
        #expect(!d.log.verified.withLock { $0 }.contains("I don't know"))
        #expect(r.best != ["I don't know"])
        #expect(r.best != nil)
    }

    @Test func aDomainThatCannotRefineSaysSo() async throws {
        let domain = ScriptedDomain(tree: [:], goals: [:], rollout: [["a!"]])
        await #expect(throws: UnsupportedByDomain.self) {
            _ = try await MCTSr().run(SearchContext(domain: domain))
        }
    }

    /// One run at a large budget answers for every smaller one (the anytime ledger).
    @Test(arguments: [15, 30, 45, 80, 120])
    func theAnytimeLedgerMatchesABudgetLimitedRun(budget: Int) async throws {
        func domain() -> RefiningDomain {
            RefiningDomain(refinements: ["v0": ["v1", "v2"], "v1": ["v3"], "v2": ["v4"]], passing: ["v4"],
                           credit: ["v1": 0.5, "v2": 0.3, "v3": 0.1], scores: ["v0": [10], "v1": [60, 20], "v2": [90], "v3": [-40]])
        }
        let full = try await mctsr(domain(), budget: 10_000)
        let limited = try await mctsr(domain(), budget: budget)
        let answer = full.answers.last { $0.tokensBefore < budget }?.node
        let spent = full.calls.last { $0.tokensBefore < budget }?.tokensAfter ?? 0
        #expect(answer.map { full.trace[$0].action } == limited.bestNode.map { limited.trace[$0].action })
        #expect(spent == limited.statistics.cost.generatedTokens)
    }
}
