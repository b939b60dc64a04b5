import CodeDomain
import Foundation

/// One task's rollouts merged into a prefix tree: rollouts that agree on
/// their first lines share those states, so a pair (s, a) gets every outcome
/// that passed through it. Node 0 is the empty program.
public struct RolloutTree: Sendable {
    public struct Edge: Sendable {
        /// nil: the end-of-program action.
        public var line: String?
        public var parent: Int
        /// The state the action leads to; nil for the end action (terminal).
        public var child: Int?
        /// Depth of the parent state (lines so far).
        public var depth: Int
        /// Steps from this action to the end of each rollout through it, with that rollout's reward.
        public var returns: [(stepsToEnd: Int, reward: Double)]
        /// The policy's log-probability of the line (first rollout that reported it).
        public var logprob: (sum: Double, tokens: Int)?
    }

    public struct Node: Sendable {
        public var lines: [String]
        public var edges: [Int] = []
    }

    public var taskId: String
    public var nodes: [Node] = [Node(lines: [])]
    public var edges: [Edge] = []

    /// Lines compare with trailing whitespace dropped, as the search's state keys do.
    static func normal(_ line: String) -> String {
        String(line.reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }

    public init(taskId: String, rollouts: [RolloutRecord]) {
        self.taskId = taskId
        for r in rollouts {
            let steps = r.lines.count + 1
            var node = 0
            for (t, raw) in r.lines.enumerated() {
                let line = Self.normal(raw)
                let e = edge(from: node, line: line, depth: t, logprob: r.logprob(line: t))
                edges[e].returns.append((steps - t - 1, r.reward))
                if edges[e].child == nil {
                    edges[e].child = nodes.count
                    nodes.append(Node(lines: nodes[node].lines + [line]))
                }
                node = edges[e].child!
            }
            let end = edge(from: node, line: nil, depth: r.lines.count, logprob: nil)
            edges[end].returns.append((0, r.reward))
        }
    }

    private mutating func edge(from node: Int, line: String?, depth: Int, logprob: (sum: Double, tokens: Int)?) -> Int {
        if let e = nodes[node].edges.first(where: { edges[$0].line == line }) { return e }
        edges.append(Edge(line: line, parent: node, child: nil, depth: depth, returns: [], logprob: logprob))
        nodes[node].edges.append(edges.count - 1)
        return edges.count - 1
    }

    /// Learning from rollouts: ŷ(s_t, a_t) = max over rollouts through the
    /// pair of γ^(steps to the end) · R (the only reward is the terminal one).
    public func rolloutLabels(gamma: Double) -> [Double] {
        edges.map { e in e.returns.map { pow(gamma, Double($0.stepsToEnd)) * $0.reward }.max() ?? 0 }
    }

    /// Eventual success of a pair: some rollout through it passed (the AUC's label).
    public func successLabels() -> [Bool] {
        edges.map { e in e.returns.contains { $0.reward == 1 } }
    }

    /// One round of fitted Q-iteration's targets: r + γ·max over the recorded
    /// successors of the current Q̂ (the top-K are all the recorded ones, at
    /// most M), and the terminal reward R for the end action.
    public func fqiTargets(gamma: Double, q: (Int) -> Double) -> [Double] {
        edges.map { e in
            guard let child = e.child else { return e.returns.map(\.reward).max() ?? 0 }
            let next = nodes[child].edges.map(q).max() ?? 0
            return gamma * next
        }
    }
}
