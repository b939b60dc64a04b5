/// Work started together and read back one at a time, in order.
///
/// Why: episodes that come from one policy call finish together, and judging
/// them one after another makes the search wait for each verifier run in turn.
/// Started at once, they run side by side (the verifier bounds how many at a
/// time: the jail pool has one slot per core); read back in order, the search
/// books them exactly as it would have one by one, so its choices, trace and
/// ledger do not depend on which finished first.
struct Concurrently<Value: Sendable>: Sendable {
    private let tasks: [Task<Value, Error>]

    init(_ work: [@Sendable () async throws -> Value]) {
        tasks = work.map { w in Task { try await w() } }
    }

    var count: Int { tasks.count }

    /// The i-th result; a cancelled caller cancels all of them.
    func value(_ i: Int) async throws -> Value {
        try await withTaskCancellationHandler {
            try await tasks[i].value
        } onCancel: {
            cancel()
        }
    }

    /// Stops what is still running (a search that has its answer does not wait for the rest).
    func cancel() {
        for t in tasks { t.cancel() }
    }
}
