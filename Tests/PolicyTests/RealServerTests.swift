import Foundation
import Testing
@testable import Policy

/// Against the real embedded llama-server with the 0.5B model (installed by
/// scripts/bootstrap, which `make test` runs first).
@Suite(.serialized, .enabled(if: FileManager.default.fileExists(atPath: QCodeCache.modelPath().path)
                             && FileManager.default.isExecutableFile(atPath: QCodeCache.serverBinary.path),
                             "run scripts/bootstrap to install llama-server and the model"))
struct RealServerTests {
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
        #expect(first.usage.calls == 1)
        #expect(first.usage.promptTokens > 50)
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
        #expect(second.usage.cachedPromptTokens >= first.usage.promptTokens - 2)
        #expect(second.usage.promptTokens < 20)
        // Greedy with a seed is reproducible.
        let g1 = try await model.complete(CompletionRequest(prompt: Self.prompt, maxTokens: 20, stop: ["\n"], slot: 0))
        let g2 = try await model.complete(CompletionRequest(prompt: Self.prompt, maxTokens: 20, stop: ["\n"], slot: 0))
        #expect(g1.choices.map(\.text) == g2.choices.map(\.text))
    }

    @Test func theEmbeddedServerRestartsAfterItDiesAndStopsCleanly() async throws {
        let server = EmbeddedServer(settings: ServerSettings(slots: 1, contextTokens: 2048))
        _ = try await server.ensureRunning()
        let pid = try #require(await server.pid)
        kill(pid, SIGKILL)
        try await Task.sleep(for: .milliseconds(300))
        let model = EmbeddedLanguageModel(server: server)
        let response = try await model.complete(CompletionRequest(prompt: Self.prompt, maxTokens: 8, stop: ["\n"]))
        #expect(response.choices.count == 1)
        #expect(await server.restarts == 1)
        let newPid = try #require(await server.pid)
        #expect(newPid != pid)
        await server.stop()
        #expect(kill(newPid, 0) != 0)
    }

    /// A qcode that dies without cleaning up (SIGKILL) must not leave its server running.
    @Test func theServerDiesWithAProcessThatIsKilled() async throws {
        // qcode-jail is built next to the test bundle (PolicyTests depends on it).
        let launcher = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("qcode-jail")
        try #require(FileManager.default.isExecutableFile(atPath: launcher.path))
        // An intermediate process owns the server, then is SIGKILLed.
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("tie-\(UUID()).pid")
        defer { try? FileManager.default.removeItem(at: pidFile) }
        let owner = Process()
        owner.executableURL = URL(fileURLWithPath: "/bin/sh")
        owner.arguments = ["-c", "\"$0\" --tied-to-parent -- /bin/sleep 600 & echo $! > \"$1\"; wait", launcher.path, pidFile.path]
        try owner.run()
        var child: Int32?
        for _ in 0..<100 where child == nil {
            try await Task.sleep(for: .milliseconds(50))
            child = (try? String(contentsOf: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        let pid = try #require(child)
        defer { kill(pid, SIGKILL) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(kill(pid, 0) == 0)
        kill(owner.processIdentifier, SIGKILL)
        // Not waitUntilExit(): it needs a run loop, which a test task does not have.
        for _ in 0..<50 where owner.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        var gone = false
        for _ in 0..<50 where !gone {
            try await Task.sleep(for: .milliseconds(100))
            // Reaped by init, or a zombie of the dead shell: either way, not running.
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: " ")[2]
            gone = state == nil || state == "Z"
        }
        #expect(gone)
    }

    @Test func aMissingModelSaysRunBootstrap() async throws {
        let server = EmbeddedServer(settings: ServerSettings(model: URL(fileURLWithPath: "/nonexistent/model.gguf")))
        await #expect(throws: PolicyError.modelMissing("/nonexistent/model.gguf")) { try await server.ensureRunning() }
        #expect(PolicyError.modelMissing("x").description.contains("scripts/bootstrap"))
    }
}
