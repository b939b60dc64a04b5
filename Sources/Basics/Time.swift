extension Duration {
    /// Seconds as a Double: what reports, budgets and ledgers store.
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    public var milliseconds: Double { seconds * 1000 }
}

import Synchronization

/// Resumes a continuation once, from whichever side gets there first.
private final class FirstOf: Sendable {
    private let state: Mutex<CheckedContinuation<Bool, Never>?>
    init(_ continuation: CheckedContinuation<Bool, Never>) { state = Mutex(continuation) }
    func resume(_ value: Bool) {
        state.withLock { c in
            c?.resume(returning: value)
            c = nil
        }
    }
}

/// Waits for `body` at most `seconds`; true when it finished in time. Unlike
/// a task group, this returns at the deadline even when `body` ignores
/// cancellation (awaiting an unstructured task's value, say): `body` is then
/// cancelled and left to finish on its own.
public func finishes(within seconds: Double, _ body: @escaping @Sendable () async -> Void) async -> Bool {
    let work = Mutex<Task<Void, Never>?>(nil)
    let inTime = await withCheckedContinuation { (cont: CheckedContinuation<Bool, Never>) in
        let first = FirstOf(cont)
        work.withLock { $0 = Task { await body(); first.resume(true) } }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            first.resume(false)
        }
    }
    if !inTime { work.withLock { $0 }?.cancel() }
    return inTime
}
