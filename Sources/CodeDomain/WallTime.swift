import Basics
import Foundation
import Policy
import Sandbox
import Synchronization

/// Where a solve's wall time went: waiting for the LLM, waiting for the jail,
/// and the rest, which is qcode itself (search, syntax, value model, bookkeeping).
public struct WallSplit: Sendable, Hashable {
    public var wall: Double
    /// Seconds with an LLM call in flight.
    public var llm: Double
    /// Seconds with a jail run in flight and no LLM call (runs side by side count once).
    public var jail: Double
    /// The rest of `wall`.
    public var qcode: Double { max(0, wall - llm - jail) }
}

/// Records when a solve's LLM calls and jail runs were in flight.
///
/// Why intervals, not sums of each call's own time: verification runs side by
/// side (several at once count as the time they overlap, once), and a run may
/// wait for the pool's slot, which the user waits for too. What is covered by
/// no interval is time the user waits for qcode itself.
public final class WallMeter: Sendable {
    public enum Kind: Sendable { case llm, jail }
    private let origin = ContinuousClock.now
    private let spans = Mutex<[(kind: Kind, start: Double, end: Double)]>([])

    public init() {}

    private func now() -> Double { (ContinuousClock.now - origin).seconds }

    public func measure<T>(_ kind: Kind, _ body: () async throws -> T) async rethrows -> T {
        let start = now()
        defer {
            let end = now()
            spans.withLock { $0.append((kind, start, end)) }
        }
        return try await body()
    }

    /// Books an interval directly (tests of the arithmetic).
    func record(_ kind: Kind, from start: Double, to end: Double) {
        spans.withLock { $0.append((kind, start, end)) }
    }

    /// The split of `wall` seconds, the solve's own duration.
    public func split(wall: Double) -> WallSplit {
        let all = spans.withLock { $0 }
        let llm = Self.union(all.filter { $0.kind == .llm }.map { ($0.start, $0.end) })
        let busy = Self.union(all.map { ($0.start, $0.end) })
        return WallSplit(wall: wall, llm: min(llm, wall), jail: min(max(0, busy - llm), max(0, wall - llm)))
    }

    /// Length of the union of intervals.
    static func union(_ spans: [(Double, Double)]) -> Double {
        var total = 0.0, end = -Double.infinity
        for (s, e) in spans.sorted(by: { $0.0 < $1.0 }) where e > end {
            total += e - max(s, end)
            end = e
        }
        return total
    }
}

/// The policy, its calls recorded on a meter.
public struct TimedModel: LanguageModel {
    public let base: any LanguageModel
    public let meter: WallMeter
    public init(_ base: any LanguageModel, meter: WallMeter) {
        self.base = base
        self.meter = meter
    }
    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        try await meter.measure(.llm) { try await base.complete(request) }
    }
}

/// The verifier, its runs recorded on a meter.
public struct TimedVerifier: ProgramVerifier {
    public let base: any ProgramVerifier
    public let meter: WallMeter
    public init(_ base: any ProgramVerifier, meter: WallMeter) {
        self.base = base
        self.meter = meter
    }
    public func run(_ job: JailJob) async throws -> TestReport {
        try await meter.measure(.jail) { try await base.run(job) }
    }
}
