import Foundation

/// Runs jobs with bounded parallelism and remembers verdicts.
///
/// The bound exists because each run is a Python process competing for the same
/// cores as the search; the cache because search revisits identical programs.
/// Timeouts are not cached: they depend on the machine's load at the time.
public actor JailRunner {
    struct Key: Hashable {
        var job: JailJob
        var limits: JailLimits
    }

    public let jail: Jail
    public let parallelism: Int
    public let cacheCapacity: Int
    public private(set) var stats = JailStats(runs: 0, cacheHits: 0)

    private var cache: [Key: TestReport] = [:]
    private var insertionOrder: [Key] = []
    private var evictFrom = 0
    private var active = 0
    private var waiters: [(id: UUID, cont: CheckedContinuation<Void, Error>)] = []

    public init(jail: Jail, parallelism: Int = ProcessInfo.processInfo.activeProcessorCount, cacheCapacity: Int = 4096) {
        self.jail = jail
        self.parallelism = max(1, parallelism)
        self.cacheCapacity = max(0, cacheCapacity)
    }

    /// With a pool, its gate bounds the runs instead of `parallelism`: one bound
    /// for every runner sharing the pool (a daemon has one runner per time
    /// limit), with turns taken fairly across solves (`JailPool.lane`).
    public func run(_ job: JailJob) async throws -> TestReport {
        let key = Key(job: job, limits: jail.limits)
        if let hit = cache[key] {
            stats.cacheHits += 1
            return hit
        }
        let gate = jail.pool?.gate
        if let gate { try await gate.acquire(lane: JailPool.lane) } else { try await acquire() }
        let report: TestReport
        do {
            report = try await judge(job, key: key)
        } catch {
            if let gate { await gate.release() } else { release() }
            throw error
        }
        if let gate { await gate.release() } else { release() }
        return report
    }

    private func judge(_ job: JailJob, key: Key) async throws -> TestReport {
        if let hit = cache[key] { // filled while we waited for a slot
            stats.cacheHits += 1
            return hit
        }
        stats.runs += 1
        let report = try await jail.run(job)
        if report.path == .warm { stats.warmRuns += 1 }
        if report.outcome != .timeout { store(key, report) }
        return report
    }

    /// Entries evicted oldest-first; a ring of keys keeps eviction O(1).
    private func store(_ key: Key, _ report: TestReport) {
        guard cacheCapacity > 0 else { return }
        if cache.updateValue(report, forKey: key) != nil { return }
        insertionOrder.append(key)
        if cache.count > cacheCapacity {
            cache.removeValue(forKey: insertionOrder[evictFrom])
            evictFrom += 1
            if evictFrom > cacheCapacity { // compact the ring now and then
                insertionOrder.removeFirst(evictFrom)
                evictFrom = 0
            }
        }
    }

    private func acquire() async throws {
        if active < parallelism {
            active += 1
            return
        }
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, Error>) in
                if Task.isCancelled {
                    cont.resume(throwing: CancellationError())
                } else {
                    waiters.append((id, cont))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    private func cancelWaiter(_ id: UUID) {
        if let i = waiters.firstIndex(where: { $0.id == id }) {
            waiters.remove(at: i).cont.resume(throwing: CancellationError())
        }
    }

    /// Hands the slot straight to the next waiter, so `active` never dips and lets a newcomer jump the queue.
    private func release() {
        if waiters.isEmpty {
            active -= 1
        } else {
            waiters.removeFirst().cont.resume()
        }
    }
}
