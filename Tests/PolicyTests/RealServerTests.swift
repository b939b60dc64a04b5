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

    @Test func aMissingModelSaysRunBootstrap() async throws {
        let server = EmbeddedServer(settings: ServerSettings(model: URL(fileURLWithPath: "/nonexistent/model.gguf")))
        await #expect(throws: PolicyError.modelMissing("/nonexistent/model.gguf")) { try await server.ensureRunning() }
        #expect(PolicyError.modelMissing("x").description.contains("scripts/bootstrap"))
    }
}
