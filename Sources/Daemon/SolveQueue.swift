import Foundation
import RPC

/// Admission for solves: at most `capacity` run at once and at most
/// `maxWaiting` wait. Waiters are served round-robin across connections (FIFO
/// within one), so one client queueing twenty solves does not starve another
/// that queued one. Past `maxWaiting` a solve fails at once with "busy" rather
/// than waiting without bound.
public actor SolveQueue {
    public let capacity: Int
    public let maxWaiting: Int
    private var running = 0
    /// Slot numbers of the running solves: each solve pins its LLM requests to
    /// its own server slot, so concurrent searches do not evict each other's prefix cache.
    private var freeSlots: [Int]
    private var waiters: [Int: [(id: UUID, cont: CheckedContinuation<Void, any Error>)]] = [:]
    private var rotation: [Int] = []
    private var waitingCount = 0

    public init(capacity: Int, maxWaiting: Int) {
        self.capacity = max(1, capacity)
        self.maxWaiting = max(0, maxWaiting)
        freeSlots = Array((0..<max(1, capacity)).reversed())
    }

    public var snapshot: (running: Int, waiting: Int) { (running, waitingCount) }

    /// Runs `body` once admitted, with the number of the slot it holds.
    public func withSlot<T: Sendable>(owner: Int, _ body: @Sendable (Int) async throws -> T) async throws -> T {
        try await acquire(owner: owner)
        let slot = freeSlots.popLast() ?? 0
        defer {
            freeSlots.append(slot)
            release()
        }
        return try await body(slot)
    }

    func acquire(owner: Int) async throws {
        try Task.checkCancellation()
        if running < capacity && waitingCount == 0 {
            running += 1
            return
        }
        guard waitingCount < maxWaiting else {
            throw ResponseError(code: ErrorCode.serverBusy,
                                message: "the daemon is busy: \(running) solves running and \(waitingCount) waiting (max_queued_solves = \(maxWaiting)); retry later")
        }
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled {
                    cont.resume(throwing: CancellationError())
                    return
                }
                if waiters[owner, default: []].isEmpty { rotation.append(owner) }
                waiters[owner, default: []].append((id, cont))
                waitingCount += 1
            }
        } onCancel: {
            Task { await self.cancelWaiter(owner: owner, id: id) }
        }
    }

    private func cancelWaiter(owner: Int, id: UUID) {
        guard let i = waiters[owner]?.firstIndex(where: { $0.id == id }) else { return }
        let w = waiters[owner]!.remove(at: i)
        waitingCount -= 1
        if waiters[owner]!.isEmpty {
            waiters[owner] = nil
            rotation.removeAll { $0 == owner }
        }
        w.cont.resume(throwing: CancellationError())
    }

    /// Hands the slot straight to the next waiter in the rotation.
    func release() {
        guard !rotation.isEmpty else {
            running -= 1
            return
        }
        let owner = rotation.removeFirst()
        let w = waiters[owner]!.removeFirst()
        waitingCount -= 1
        if waiters[owner]!.isEmpty { waiters[owner] = nil } else { rotation.append(owner) }
        w.cont.resume()
    }
}
