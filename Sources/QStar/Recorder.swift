import Basics

/// One LLM call in a search's ledger: the generated tokens before and after
/// it, and the seconds since the search started when it returned.
public struct LedgerCall: Sendable, Hashable, Codable {
    public var tokensBefore: Int
    public var tokensAfter: Int
    public var seconds: Double
}

/// The search's answer after a finished program was judged: `node` is the
/// program it would return now, `tokensBefore` the generated tokens before the
/// call that produced the judged program.
public struct LedgerAnswer: Sendable, Hashable, Codable {
    public var tokensBefore: Int
    public var node: Int
}

/// What every planner keeps while it searches: the explored tree, the cost
/// ledger, the best answer so far and its timeline, and the progress reports.
/// One recorder for all planners, so they report, stop and choose alike.
///
/// The timeline makes one run at a large budget answer for every smaller one:
/// a run limited to B tokens starts exactly the calls this run started with
/// fewer than B tokens spent (the search order never looks at the budget), so
/// its answer is the last `LedgerAnswer` whose call started below B and its
/// cost the `tokensAfter` of the last call started below B.
public struct SearchRecorder<State: Sendable>: Sendable {
    public private(set) var states: [State]
    public var trace: [TraceNode]
    public var stats = SearchStatistics()
    public private(set) var best: Int?
    public private(set) var calls: [LedgerCall] = []
    public private(set) var answers: [LedgerAnswer] = []
    /// Each node's score for breaking ties between equally verified programs (f, or log-probability).
    private var scores: [Double]
    /// Generated tokens before the call that created each node.
    private var origin: [Int]
    /// Nodes that passed every check, in the order they were judged, with their behaviour.
    public private(set) var passers: [Int] = []
    /// Passing episodes to collect before answering (see `SearchSettings.select`).
    private let select: Int
    private let clock: any SearchClock
    private let started: Double
    private let progress: (@Sendable (SearchProgress<State>) -> Void)?

    public init(root: State, clock: any SearchClock, progress: (@Sendable (SearchProgress<State>) -> Void)?,
                select: Int = 1) {
        self.select = max(1, select)
        states = [root]
        trace = [.root]
        scores = [0]
        origin = [0]
        self.clock = clock
        self.progress = progress
        started = clock.now()
    }

    public var tokens: Int { stats.cost.generatedTokens }
    public var elapsed: Double { clock.now() - started }
    public var bestState: State? { best.map { states[$0] } }
    public var bestVerification: Verification? { best.flatMap { trace[$0].verification } }
    /// The answer passes every check.
    public var solved: Bool { bestVerification?.reward == 1 }
    /// Enough passing episodes to answer: the search stops.
    public var satisfied: Bool { select <= 1 ? solved : passers.count >= select }

    /// Whether the budget is spent; checked before each new call.
    public func exhausted(_ budget: Budget) -> StopReason? {
        if let limit = budget.maxExpansions, stats.expansions >= limit { return .expansions }
        if let limit = budget.maxGeneratedTokens, tokens >= limit { return .tokens }
        if let limit = budget.maxSeconds, elapsed >= limit { return .deadline }
        return nil
    }

    /// Books one LLM call; returns the tokens spent before it, which the nodes it creates carry.
    @discardableResult
    public mutating func call(_ cost: Cost) -> Int {
        let before = tokens
        stats.cost += cost
        stats.expansions += 1
        calls.append(LedgerCall(tokensBefore: before, tokensAfter: tokens, seconds: elapsed))
        return before
    }

    /// Adds a node; `tokensBefore` is what was spent before the call that produced it.
    public mutating func add(_ state: State, _ node: TraceNode, score: Double, tokensBefore: Int) -> Int {
        var node = node
        node.id = states.count
        node.tokensBefore = tokensBefore
        states.append(state)
        trace.append(node)
        scores.append(score)
        origin.append(tokensBefore)
        return node.id
    }

    public func state(_ id: Int) -> State { states[id] }
    public var count: Int { states.count }

    /// Books a verdict and updates the answer: more checks passed wins, then
    /// the higher score; the first program that passes every check is kept —
    /// or, collecting several (`select`), the passing one whose behaviour most
    /// of the others share.
    public mutating func judged(_ id: Int, _ verification: Verification, behaviour: String? = nil) {
        trace[id].terminal = true
        trace[id].verification = verification
        stats.terminals += 1
        stats.cost += verification.cost
        if let behaviour { trace[id].behaviour = behaviour }
        if verification.reward == 1 { passers.append(id) }
        if select > 1, !passers.isEmpty {
            best = agreement()
        } else if !solved {
            if let b = best {
                let vb = trace[b].verification!
                if verification.passed > vb.passed || (verification.passed == vb.passed && scores[id] > scores[b]) { best = id }
            } else {
                best = id
            }
        }
        answers.append(LedgerAnswer(tokensBefore: origin[id], node: best!))
    }

    /// The passing node whose behaviour the most passing nodes share; ties go
    /// to the behaviour seen first. A node without a fingerprint is alone.
    func agreement() -> Int {
        var size: [String: Int] = [:]
        func kind(_ n: Int) -> String { trace[n].behaviour ?? "#\(n)" }
        for n in passers { size[kind(n), default: 0] += 1 }
        var winner = passers[0]
        for n in passers where size[kind(n)]! > size[kind(winner)]! { winner = n }
        return winner
    }

    /// Books what finding behaviours cost (probe runs in the jail).
    public mutating func spend(_ cost: Cost) { stats.cost += cost }

    public func report(frontier f: Double = 0) {
        progress?(SearchProgress(expansions: stats.expansions, generatedTokens: tokens, programsTried: stats.terminals,
                                 bestF: f, best: bestState, bestVerification: bestVerification, bestNode: best))
    }

    public mutating func finish(_ reason: StopReason) -> SearchResult<State> {
        stats.stop = reason
        stats.nodes = trace.count
        stats.wallSeconds = elapsed
        var judged: [Int: State] = [:]
        for node in trace where node.verification != nil { judged[node.id] = states[node.id] }
        return SearchResult(best: bestState, bestVerification: bestVerification, bestNode: best, statistics: stats,
                            trace: trace, calls: calls, answers: answers, judged: judged)
    }
}
