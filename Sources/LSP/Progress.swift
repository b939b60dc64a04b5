import CodeDomain
import Daemon
import Foundation
import RPC
import Synchronization

/// One implement's work-done progress in the editor: begin, reports, end —
/// exactly one end, and nothing after it. Without a token (the client has no
/// progress support) every call does nothing.
final class ProgressReporter: Sendable {
    let token: JSONValue?
    private let editor: RPCClient
    private let throttle: ProgressThrottle
    private let ended = Mutex(false)

    init(token: JSONValue?, editor: RPCClient, interval: Double) {
        self.token = token
        self.editor = editor
        self.throttle = ProgressThrottle(interval: interval)
    }

    func begin(_ title: String, message: String) {
        send(WorkDoneProgress(kind: .begin, title: title, cancellable: true, message: message, percentage: 0))
    }

    /// A change of state ("connecting", "searching"): always sent.
    func state(_ message: String) {
        send(WorkDoneProgress(kind: .report, message: message))
    }

    /// What the search is doing: at most one per interval, so the editor redraws a few times a second.
    func report(_ p: SolveProgress, budget: Int?) {
        guard throttle.admit() else { return }
        let percentage = budget.map { min(99, p.generatedTokens * 100 / max(1, $0)) }
        send(WorkDoneProgress(kind: .report, message: Self.describe(p), percentage: percentage))
    }

    func end(_ message: String) {
        send(WorkDoneProgress(kind: .end, message: message))
    }

    /// Queued under the lock (queueing does not block), so a report racing the end never follows it.
    private func send(_ value: WorkDoneProgress) {
        guard let token else { return }
        ended.withLock { ended in
            guard !ended else { return }
            ended = value.kind == .end
            notify(token, value)
        }
    }

    private func notify(_ token: JSONValue, _ value: WorkDoneProgress) {
        guard let params = try? LSPCoding.value(ProgressParams(token: token, value: value)) else { return }
        editor.notify(LSPMethod.progress, params)
    }

    /// "3 programs tried · best passes 2/3 tests · 412 tokens"
    static func describe(_ p: SolveProgress) -> String {
        var parts = ["\(p.programsTried) program\(p.programsTried == 1 ? "" : "s") tried"]
        if let passed = p.bestPassed, let total = p.bestTotal { parts.append("best passes \(passed)/\(total) tests") }
        parts.append("\(p.generatedTokens) tokens")
        return parts.joined(separator: " · ")
    }
}
