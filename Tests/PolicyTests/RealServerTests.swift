import Foundation
import Testing
import TestSupport
@testable import Policy

/// Against the real embedded llama-server with the 0.5B model (installed by
/// scripts/bootstrap, which `make test` runs first; in CI a missing model fails).
@Suite(.serialized, .enabled(if: Prerequisite.smallModel.shouldRun))
struct RealServerTests {
    init() throws { try Prerequisite.smallModel.require() }

    static let prompt = """
    <|im_start|>system
    You are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>
    <|im_start|>user
    Write a python function to find the minimum sum of factors of a given number.
    Your code should pass this test:
    assert find_Min_Sum(12) == 7<|im_end|>
    <|im_start|>assistant
    ```python

    """

    @Test func fourCandidateLinesFromOneCallThenACachedPrefix() async throws {
        let server = EmbeddedServer(settings: ServerSettings(slots: 4, contextTokens: 4096))
        defer { Task { await server.stop() } }
        let model = EmbeddedLanguageModel(server: server)
        let first = try await model.complete(CompletionRequest(prompt: Self.prompt, n: 4, maxTokens: 40, stop: ["\n"],
                                                               sampling: Sampling(temperature: 0.8), seed: 1, slot: 0))
        #expect(first.choices.count == 4)
        #expect(first.cost.llmCalls == 1)
        #expect(first.cost.promptTokens > 50)
        for choice in first.choices {
            #expect(!choice.text.contains("\n"))
            #expect(choice.tokenLogprobs.allSatisfy { $0 <= 0 })
            #expect(choice.tokens > 0)
        }
        #expect(first.choices.contains { $0.text.hasPrefix("def ") || $0.text.hasPrefix("import") || $0.text.hasPrefix("from") })
        // Same task, one more line: the task part comes from the slot's cache.
        let line = first.choices.first { $0.text.hasPrefix("def ") }?.text ?? "def find_Min_Sum(num):"
        let second = try await model.complete(CompletionRequest(prompt: Self.prompt + line + "\n", n: 4, maxTokens: 40, stop: ["\n"],
                                                                sampling: Sampling(temperature: 0.8), seed: 2, slot: 0))
        #expect(second.cost.cachedPromptTokens >= first.cost.promptTokens - 2)
        #expect(second.cost.promptTokens < 20)
        // A request that must not reuse the cache (a benchmark task's first) evaluates its whole prompt.
        let fresh = try await model.complete(CompletionRequest(prompt: Self.prompt + line + "\n", maxTokens: 4, stop: ["\n"],
                                                               slot: 0, reuseCache: false))
        #expect(fresh.cost.cachedPromptTokens == 0)
        #expect(fresh.cost.promptTokens > first.cost.promptTokens)
        // Greedy with a seed is reproducible.
        let g1 = try await model.complete(CompletionRequest(prompt: Self.prompt, maxTokens: 20, stop: ["\n"], slot: 0))
        let g2 = try await model.complete(CompletionRequest(prompt: Self.prompt, maxTokens: 20, stop: ["\n"], slot: 0))
        #expect(g1.choices.map(\.text) == g2.choices.map(\.text))
        // Stopped here as well as in `defer`: a process that ends with this test would not run the deferred task.
        await server.stop()
    }

    @Test func theEmbeddedServerRestartsAfterItDiesAndStopsCleanly() async throws {
        let server = EmbeddedServer(settings: ServerSettings(slots: 1, contextTokens: 2048))
        _ = try await server.ensureRunning()
        let pid = try #require(await server.pid)
        kill(pid, SIGKILL)
        // No pause: the call itself must notice the dead server, restart it and retry.
        let model = EmbeddedLanguageModel(server: server)
        let response = try await model.complete(CompletionRequest(prompt: Self.prompt, maxTokens: 8, stop: ["\n"]))
        #expect(response.choices.count == 1)
        #expect(await server.restarts == 1)
        let newPid = try #require(await server.pid)
        #expect(newPid != pid)
        await server.stop()
        #expect(kill(newPid, 0) != 0)
    }


}

/// The embedded server's life cycle against the fake llama-server: fast, no model needed.
@Suite struct EmbeddedServerLifecycleTests {
    func server(_ fake: FakeLlamaServer, tie: Bool = false) -> EmbeddedServer {
        EmbeddedServer(settings: ServerSettings(binary: FakeLlamaServer.binary, model: fake.script, startupTimeout: 30,
                                                parentTie: tie ? buildProducts.appendingPathComponent("qcode-jail") : nil,
                                                logFile: fake.log.deletingLastPathComponent().appendingPathComponent("server.log")))
    }

    static let request = CompletionRequest(prompt: "Write add.\n```python\n", maxTokens: 64, stop: ["```"])

    @Test func aServerKilledDuringACallIsRestartedAndTheCallRetriedOnce() async throws {
        let fake = try FakeLlamaServer(stall: true)
        let server = server(fake)
        let model = EmbeddedLanguageModel(server: server)
        let call = Task { try await model.complete(Self.request) }
        try await fake.waitForRequests(1)
        let first = fake.requestPids[0]
        try fake.set(stall: false)
        kill(first, SIGKILL)
        let response = try await within(60, "the retried call") { try await call.value }
        #expect(response.choices.first?.text == "def add(a, b):\n    return a + b\n")
        #expect(await server.restarts == 1)
        #expect(fake.requestPids.count == 2 && fake.requestPids[1] != first)
        await server.stop()
    }

    @Test func aSecondCrashDuringTheRetrySaysSoAndWhereTheLogIs() async throws {
        let fake = try FakeLlamaServer(stall: true)
        let server = server(fake)
        let model = EmbeddedLanguageModel(server: server)
        let call = Task { try await model.complete(Self.request) }
        try await fake.waitForRequests(1)
        kill(fake.requestPids[0], SIGKILL)
        try await fake.waitForRequests(2)
        kill(fake.requestPids[1], SIGKILL)
        let error = await #expect(throws: PolicyError.self) { try await within(60, "the failing call") { try await call.value } }
        let message = "\(error.map { "\($0)" } ?? "")"
        #expect(message.contains("crashed during this call, was restarted, and crashed again"))
        #expect(message.contains(await server.logFile.path))
        #expect(!message.contains("unset the endpoint"))
        await server.stop()
    }

    @Test func stopEndsTheServerEvenThroughTheParentTie() async throws {
        let fake = try FakeLlamaServer()
        let server = server(fake, tie: true)
        _ = try await server.ensureRunning()
        let pid = try #require(await server.pid)
        #expect(kill(pid, 0) == 0)
        await server.stop()
        #expect(await server.isRunning == false)
        // The tie was reaped by stop() (no zombie left behind by us).
        #expect(kill(pid, 0) != 0)
    }

    /// A qcode that dies without cleaning up (SIGKILL) must not leave its server running.
    @Test func theServerDiesWithAProcessThatIsKilled() async throws {
        let launcher = buildProducts.appendingPathComponent("qcode-jail")
        try #require(FileManager.default.isExecutableFile(atPath: launcher.path))
        // An intermediate process owns the tied child, then is SIGKILLed.
        let pidFile = try tempDirectory().appendingPathComponent("tie.pid")
        let owner = Process()
        owner.executableURL = URL(fileURLWithPath: "/bin/sh")
        owner.arguments = ["-c", "\"$0\" --tied-to-parent -- /bin/sleep 600 & echo $! > \"$1\"; wait", launcher.path, pidFile.path]
        try owner.run()
        try await eventually("the tie to start") { (try? String(contentsOf: pidFile, encoding: .utf8))?.hasSuffix("\n") == true }
        let pid = try #require(Int32(try String(contentsOf: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(pid, SIGKILL) }
        func running(_ p: Int32) -> Bool {
            // Reaped, or a zombie of the dead shell: either way, not running.
            guard let stat = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8) else { return false }
            return stat.split(separator: " ")[2] != "Z"
        }
        // The shell's background child is the tie only once it has exec'd and forked its
        // command: killed before, it would be reparented first and take its new parent for
        // the one to watch. So wait for the tie's own child.
        func hasChild(_ p: Int32) -> Bool {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.contains { entry in
                guard Int32(entry) != nil, let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                      let close = stat.lastIndex(of: ")") else { return false }
                return stat[close...].split(separator: " ").dropFirst(2).first == Substring(String(p))
            }
        }
        try await eventually("the tie to start its command") { hasChild(pid) }
        #expect(running(pid))
        kill(owner.processIdentifier, SIGKILL)
        try await eventually("the tie to notice its owner died") { !running(pid) }
    }

    @Test func aMissingModelSaysHowToFetchIt() async throws {
        let server = EmbeddedServer(settings: ServerSettings(binary: FakeLlamaServer.binary, model: URL(fileURLWithPath: "/nonexistent/model.gguf"),
                                                             fetchHint: EmbeddedModel.large.bootstrapCommand))
        await #expect(throws: PolicyError.modelMissing("/nonexistent/model.gguf", fix: "QCODE_MODEL=1.5b scripts/bootstrap")) {
            try await server.ensureRunning()
        }
    }
}
