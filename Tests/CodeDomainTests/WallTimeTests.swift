import Basics
import Foundation
import Synchronization
import Policy
import QStar
import Sandbox
import Testing
import TestSupport
@testable import CodeDomain

/// Where a solve's time went: LLM calls, jail runs (overlapping ones once), qcode.
@Suite struct WallTimeTests {
    @Test func overlapsCountOnceAndTheLLMComesFirst() {
        let m = WallMeter()
        m.record(.llm, from: 0, to: 2)
        m.record(.jail, from: 1.5, to: 3)    // 0.5 s of it under the LLM call
        m.record(.jail, from: 2.5, to: 3.5)  // overlaps the run before
        m.record(.jail, from: 5, to: 6)
        m.record(.llm, from: 7, to: 8)
        let split = m.split(wall: 10)
        #expect(split.llm == 3)
        #expect(split.jail == 2.5) // [2, 3.5] and [5, 6]
        #expect(split.qcode == 4.5)
        #expect(WallMeter.union([]) == 0)
    }

    /// A slow scripted model and verifier: the bench's split says where the time went,
    /// and best-of-N's batch of programs, judged side by side, counts its overlap once.
    @Test func benchReportsTheSplitOfTheSolve() async throws {
        struct SlowModel: LanguageModel {
            let base: ScriptedModel
            func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
                try await Task.sleep(for: .milliseconds(200))
                return try await base.complete(request)
            }
        }
        final class SlowVerifier: ProgramVerifier {
            let base = ScriptedVerifier(passing: "no program passes")
            /// Seconds each run took, summed.
            let total = Mutex(0.0)
            func run(_ job: JailJob) async throws -> TestReport {
                let start = ContinuousClock.now
                try await Task.sleep(for: .milliseconds(300))
                total.withLock { $0 += (ContinuousClock.now - start).seconds }
                return try await base.run(job)
            }
        }
        let verifier = SlowVerifier()
        let programs = (0..<4).map { CompletionChoice(text: "def add(a, b):\n    return \($0)\n", tokenLogprobs: [-0.5], finish: .stop, tokens: 10) }
        var options = SolveOptions()
        options.method = "best-of-n"
        options.search.samples = 4
        options.search.branchSamples = 4
        let task = CodeTask(id: "t", text: "Add two numbers.", tests: ["assert add(1, 2) == 3"])
        let bench = Benchmark(solver: Solver(model: SlowModel(base: ScriptedModel(programs: programs)), verifier: verifier),
                              scorer: ScriptedVerifier(), visible: 1)
        let r = try await bench.run(task, options: options)
        let (llm, jail, qcode) = (try #require(r.llmS), try #require(r.jailS), try #require(r.qcodeS))
        #expect(llm >= 0.2)                       // one call for the four programs
        // Four runs of 0.3 s side by side count as the time they overlap, not as their sum.
        #expect(jail >= 0.3 && jail < 0.5 * verifier.total.withLock { $0 })
        #expect(abs(llm + jail + qcode - r.wallS) < 1e-9)
        #expect(abs(r.outsideLlmS - (r.wallS - llm)) < 1e-9)
        var report = BenchReport(identity: BenchIdentity(data: "d", options: options, visible: 1, valueFingerprint: nil, model: "m"),
                                 tasks: [r])
        report.recompute()
        let split = report.wallSplit
        #expect(abs(split.llm + split.jail + split.qcode - 1) < 1e-9)
        #expect(report.markdownRow.hasSuffix(String(format: "| %.1f%% | %.2f%% | %.2f%% |", split.llm * 100, split.jail * 100,
                                                    split.qcode * 100)))
    }
}
