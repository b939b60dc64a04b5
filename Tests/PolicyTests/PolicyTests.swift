import Foundation
import Testing
import TestSupport
@testable import Policy

let llamaPair = """
[{"content":"def f(x):","stop_type":"word","tokens_predicted":4,"tokens_evaluated":120,"tokens_cached":100,
  "completion_probabilities":[{"logprob":-0.5},{"logprob":-0.25},{"logprob":-0.25}],
  "timings":{"prompt_n":20,"cache_n":100}},
 {"content":"","stop_type":"eos","tokens_predicted":1,"tokens_evaluated":120,"tokens_cached":100,
  "completion_probabilities":[{"logprob":-1.0}],"timings":{"prompt_n":20,"cache_n":100}}]
"""

func client(_ server: ScriptedServer, flavor: APIFlavor = .llama, supportsN: Bool = true, timeout: Double = 5,
            retries: Int = 2) -> HTTPLanguageModel {
    HTTPLanguageModel(baseURL: server.url, options: EndpointOptions(flavor: flavor, supportsN: supportsN, timeout: timeout,
                                                                    retries: retries, backoff: 0.01))
}

let request = CompletionRequest(prompt: "def", n: 2, maxTokens: 16, stop: ["\n"], sampling: Sampling(temperature: 0.8), seed: 5)

@Suite(.serialized) struct ProtocolTests {
    @Test func readsSeveralNativeResultsAndCountsThePromptOnce() async throws {
        let server = try ScriptedServer([.init(body: llamaPair)])
        defer { server.close() }
        let response = try await client(server).complete(request)
        #expect(response.choices.map(\.text) == ["def f(x):", ""])
        #expect(response.choices.map(\.finish) == [.stop, .endOfText])
        #expect(response.choices[0].logprobSum == -1.0)
        #expect(response.choices[0].logprobMean == -1.0 / 3)
        #expect(response.cost.generatedTokens == 5)
        #expect(response.cost.promptTokens == 20)
        #expect(response.cost.cachedPromptTokens == 100)
        let sent = try #require(server.requests.withLock { $0.first })
        #expect(sent.hasPrefix("POST /completion "))
        #expect(sent.contains("\"n\":2") && sent.contains("\"cache_prompt\":true") && sent.contains("\"n_probs\":1"))
    }

    @Test func aRequestThatMustNotReuseTheCacheSaysSo() async throws {
        let server = try ScriptedServer([.init(body: llamaPair)])
        defer { server.close() }
        var fresh = request
        fresh.reuseCache = false
        fresh.slot = 0
        _ = try await client(server).complete(fresh)
        let sent = try #require(server.requests.withLock { $0.first })
        #expect(sent.contains("\"cache_prompt\":false") && sent.contains("\"id_slot\":0"))
    }

    @Test func readsOpenAIChoicesAndCountsEveryChoicesTokens() async throws {
        let body = """
        {"choices":[{"index":1,"text":"b","finish_reason":"length","logprobs":{"content":[{"logprob":-2},{"logprob":-2}]}},
                    {"index":0,"text":"a","finish_reason":"stop","logprobs":{"content":[{"logprob":-1}]}}],
         "usage":{"prompt_tokens":50,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":40}}}
        """
        let server = try ScriptedServer([.init(body: body)])
        defer { server.close() }
        let response = try await client(server, flavor: .openai).complete(request)
        #expect(response.choices.map(\.text) == ["a", "b"])
        #expect(response.choices.map(\.finish) == [.stop, .length])
        // usage.completion_tokens says 1; the choices hold 3 tokens.
        #expect(response.cost.generatedTokens == 3)
        #expect(response.cost.promptTokens == 10)
        #expect(response.cost.cachedPromptTokens == 40)
        #expect(server.requests.withLock { $0[0] }.hasPrefix("POST /v1/completions "))
    }

    @Test func fansOutWhenTheServerDoesNotSupportN() async throws {
        let one = #"{"content":"x","stop_type":"word","tokens_predicted":1,"completion_probabilities":[{"logprob":-0.1}],"timings":{"prompt_n":5,"cache_n":0}}"#
        let server = try ScriptedServer(Array(repeating: .init(body: one), count: 3))
        defer { server.close() }
        var r = request
        r.n = 3
        let response = try await client(server, supportsN: false).complete(r)
        #expect(response.choices.count == 3)
        #expect(response.cost.llmCalls == 3)
        let bodies = server.requests.withLock { $0 }
        #expect(bodies.count == 3)
        #expect(!bodies.contains { $0.contains("\"n\":") })
        let seeds = Set(bodies.map { body -> String in
            let parts = body.components(separatedBy: "\"seed\":")
            return parts.count > 1 ? String(parts[1].prefix(while: \.isNumber)) : ""
        })
        #expect(seeds.count == 3 && !seeds.contains(""))
    }

    @Test func truncatedJSONIsAClearErrorNotACrash() async throws {
        let server = try ScriptedServer([.init(body: llamaPair, truncateAt: 40)])
        defer { server.close() }
        await #expect(throws: PolicyError.self) { try await client(server).complete(request) }
        do { _ = try await client(server).complete(request) } catch let error as PolicyError {
            // The second call hits the exhausted script (500s) and gives up after retries.
            #expect(error.description.contains("HTTP 500"))
        }
    }

    @Test func malformedResponseNamesTheProblem() async throws {
        let server = try ScriptedServer([.init(body: #"{"unexpected":true}"#)])
        defer { server.close() }
        do {
            _ = try await client(server).complete(request)
            Issue.record("expected an error")
        } catch let error as PolicyError {
            guard case .malformedResponse = error else { Issue.record("got \(error)"); return }
            #expect(error.description.contains("OpenAI-compatible or llama.cpp"))
        }
    }

    @Test func retries5xxWithBackoffThenSucceeds() async throws {
        let server = try ScriptedServer([.init(status: 503, body: #"{"error":{"message":"Loading model"}}"#),
                                         .init(status: 500, body: "oops"), .init(body: llamaPair)])
        defer { server.close() }
        let response = try await client(server).complete(request)
        #expect(response.choices.count == 2)
        #expect(server.requests.withLock { $0.count } == 3)
    }

    @Test func givesUpAfterRetriesWithTheServersMessage() async throws {
        let server = try ScriptedServer(Array(repeating: .init(status: 500, body: #"{"error":{"message":"boom"}}"#), count: 3))
        defer { server.close() }
        await #expect(throws: PolicyError.http(status: 500, detail: "boom")) { try await client(server).complete(request) }
    }

    @Test func contextOverflowSaysWhatToDo() async throws {
        let body = #"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#
        let server = try ScriptedServer([.init(status: 400, body: body)])
        defer { server.close() }
        do {
            _ = try await client(server).complete(request)
            Issue.record("expected an error")
        } catch let error as PolicyError {
            guard case .contextTooLong = error else { Issue.record("got \(error)"); return }
            #expect(error.description.contains("larger context"))
        }
    }

    @Test func aSlowServerTimesOut() async throws {
        let server = try ScriptedServer([.init(body: llamaPair, delay: 30)])
        defer { server.close() }
        await #expect(throws: PolicyError.timedOut(server.url.absoluteString, seconds: 0.5)) {
            try await client(server, timeout: 0.5, retries: 0).complete(request)
        }
        // The client hung up: the server saw the connection go away during its 30 s delay.
        try await eventually("the server to see the client give up") { server.connectionsClosedEarly.load(ordering: .relaxed) == 1 }
    }

    @Test func cancellationAbortsTheTransfer() async throws {
        let server = try ScriptedServer([.init(body: llamaPair, delay: 60)])
        defer { server.close() }
        let model = client(server, timeout: 120)
        let task = Task { try await model.complete(request) }
        try await eventually("the request to reach the server") { server.requests.withLock { $0.count } == 1 }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await within(30, "the cancelled call") { try await task.value } }
        // The server sees the connection go away, long before its 60 s delay.
        try await eventually("the server to see the client hang up") { server.connectionsClosedEarly.load(ordering: .relaxed) == 1 }
    }

    @Test func aServerThatIsDownIsReportedAsUnreachable() async throws {
        let server = try ScriptedServer([])
        server.close()
        await #expect(throws: PolicyError.serverUnreachable(server.url.absoluteString)) {
            try await client(server, retries: 1).complete(request)
        }
    }
}
