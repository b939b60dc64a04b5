import Basics
import Foundation
import Synchronization
import Testing
@testable import QStar

/// A scripted domain whose verifier takes time (per program) and counts how many
/// verifications run at once, and which of them were cancelled.
struct SlowVerifierDomain: ScriptedVariant {
    var base: ScriptedDomain
    /// How long verifying each terminal key takes (default 10 ms).
    var delays: [String: Duration] = [:]
    let running = Gauge()

    final class Gauge: Sendable {
        private let state = Mutex((now: 0, peak: 0, cancelled: 0))
        func withLock<R>(_ body: (inout (now: Int, peak: Int, cancelled: Int)) -> R) -> R { state.withLock { body(&$0) } }
    }

    func verify(_ state: [String]) async throws -> Verification {
        running.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
        defer { running.withLock { $0.now -= 1 } }
        do {
            try await Task.sleep(for: delays[key(of: state)] ?? .milliseconds(10))
        } catch {
            running.withLock { $0.cancelled += 1 }
            throw error
        }
        return try await base.verify(state)
    }
}

@Suite struct ConcurrentVerificationTests {
    /// Best-of-N judges a batch side by side, yet answers as if one by one: the
    /// first passing program in draw order wins even when a later one is judged first.
    @Test func bestOfNJudgesABatchTogetherAndBooksItInOrder() async throws {
        let base = ScriptedDomain(tree: [:], goals: ["p1!": 2, "p2!": 2], rollout: [["p0!"], ["p1!"], ["p2!"], ["p3!"]])
        let domain = SlowVerifierDomain(base: base, delays: ["p0!": .milliseconds(300), "p1!": .milliseconds(150),
                                                             "p2!": .milliseconds(1)])
        var s = settings(seed: 1)
        s.branchSamples = 4
        s.samples = 4
        let result = try await BestOfN().run(SearchContext(domain: domain, settings: s))
        #expect(result.best == ["p1!"])
        #expect(result.statistics.terminals == 2, "p0 then p1 booked; p1 passes, so p2 and p3 are never booked")
        #expect(result.trace.filter { $0.verification != nil }.map(\.action) == ["sample 1", "sample 2"])
        #expect(domain.running.withLock { $0.peak } == 4)
    }

    /// A cancelled search cancels the verifications it started.
    @Test func cancellingTheSearchCancelsItsVerifications() async throws {
        let base = ScriptedDomain(tree: [:], goals: [:], rollout: [["p0!"], ["p1!"], ["p2!"]])
        let domain = SlowVerifierDomain(base: base, delays: ["p0!": .seconds(30), "p1!": .seconds(30), "p2!": .seconds(30)])
        var s = settings(seed: 1)
        s.branchSamples = 3
        s.samples = 3
        let search = Task { try await BestOfN().run(SearchContext(domain: domain, settings: s)) }
        while domain.running.withLock({ $0.now }) < 3 { try await Task.sleep(for: .milliseconds(5)) }
        search.cancel()
        let outcome = await search.result
        #expect(throws: CancellationError.self) { try outcome.get() }
        #expect(domain.running.withLock { ($0.now, $0.cancelled) } == (0, 3))
    }

    /// Q*'s continuations: the episodes of one expansion are judged together, and
    /// the search's trace is what it is when each is judged on its own, however
    /// long each takes.
    @Test func qStarJudgesAnExpansionsEpisodesTogether() async throws {
        func run(delays: [String: Duration]) async throws -> (SearchResult<[String]>, Int) {
            let base = ScriptedDomain(tree: [:], goals: ["c!": 2], credit: ["a!": 0.4, "b!": 0.2],
                                      paths: ["": [["x", "a!"], ["y", "b!"], ["c!"]]])
            let domain = SlowVerifierDomain(base: base, delays: delays)
            var s = SearchSettings()
            s.greedyFirst = false
            s.branchSamples = 3
            let result = try await AStarSearch().run(SearchContext(domain: domain, settings: s))
            return (result, domain.running.withLock { $0.peak })
        }
        let (even, peak) = try await run(delays: [:])
        let (skewed, _) = try await run(delays: ["x/a!": .milliseconds(200), "c!": .milliseconds(1)])
        #expect(peak == 3)
        #expect(even.best == ["c!"] && skewed.best == ["c!"])
        #expect(even.trace.map(\.action) == skewed.trace.map(\.action))
        #expect(even.trace.compactMap(\.verification?.credit) == skewed.trace.compactMap(\.verification?.credit))
    }
}
