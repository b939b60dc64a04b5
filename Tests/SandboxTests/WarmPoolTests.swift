import Foundation
import Testing
import TestSupport
@testable import Sandbox

/// A ready pool with `slots` slots, or a failure that says why the pool is unavailable.
func readyPool(slots: Int = 2) async throws -> JailPool {
    let pool = JailPool(jail: try Jail(), slots: slots)
    let state = await pool.waitUntilSettled()
    try #require(state == .ready, "the warm pool did not start: \(state)")
    return pool
}

func warmJail(_ pool: JailPool, limits: JailLimits = .default) throws -> Jail {
    var jail = try Jail(limits: limits)
    jail.pool = pool
    return jail
}

@Suite("Warm pool", .serialized)
struct WarmPoolTests {
    @Test func aWarmRunJudgesLikeAColdOne() async throws {
        let pool = try await readyPool()
        defer { pool.shutdown() }
        let jail = try warmJail(pool)
        let job = JailJob(program: "def sq(x):\n    return x * 2\nprint('dbg')\n",
                          tests: "assert sq(2) == 4\n\nassert sq(3) == 9\nassert sq(0) == 0\n")
        let warm = try await jail.run(job)
        var coldJail = jail
        coldJail.pool = nil
        let cold = try await coldJail.run(job)
        #expect(warm.path == .warm && cold.path == .cold)
        #expect(warm.outcome == .failed && cold.outcome == .failed)
        #expect(warm.asserts == cold.asserts)
        #expect(warm.stdout == "dbg\n" && warm.stdout == cold.stdout)
        #expect(warm.isolation == .namespaces)
        #expect(warm.wallMs > 0 && warm.cpuMs > 0)
    }
}
