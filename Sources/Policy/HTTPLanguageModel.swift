import Basics
import Foundation

/// Which wire protocol the endpoint speaks.
public enum APIFlavor: String, Sendable, Codable, CaseIterable {
    /// llama.cpp's native `/completion`: reports end-of-text separately from
    /// stop strings, and takes `id_slot` and `cache_prompt`.
    case llama
    /// OpenAI-compatible `/v1/completions` (vLLM, Ollama, llama.cpp).
    case openai
}

public struct EndpointOptions: Sendable, Hashable {
    public var flavor: APIFlavor
    /// The server answers `n` > 1 with several choices from one request; when
    /// false, `n` concurrent requests are made instead.
    public var supportsN: Bool
    public var model: String?
    public var timeout: Double
    public var retries: Int
    public var backoff: Double

    public init(flavor: APIFlavor = .llama, supportsN: Bool = true, model: String? = nil, timeout: Double = 600,
                retries: Int = 3, backoff: Double = 0.25) {
        self.flavor = flavor
        self.supportsN = supportsN
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
    }
}

/// A completions client for llama.cpp, vLLM and Ollama servers.
public struct HTTPLanguageModel: LanguageModel {
    public let baseURL: URL
    public let options: EndpointOptions
    let transport: any HTTPTransport

    public init(baseURL: URL, options: EndpointOptions = EndpointOptions(), transport: any HTTPTransport = CurlTransport()) {
        self.baseURL = baseURL
        self.options = options
        self.transport = transport
    }

    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        if request.n <= 1 || options.supportsN {
            return try await completeOnce(request)
        }
        // The server ignores or refuses `n`: fan out, one distinct seed each so
        // sampled requests do not all return the same text.
        return try await withThrowingTaskGroup(of: CompletionResponse.self) { group in
            for i in 0..<request.n {
                var single = request
                single.n = 1
                single.seed = request.seed.map { $0 &+ UInt64(i) }
                group.addTask { try await completeOnce(single) }
            }
            var merged = CompletionResponse(choices: [], cost: Cost())
            for try await part in group {
                merged.choices += part.choices
                merged.cost += part.cost
            }
            return merged
        }
    }

    /// One request, retried where a retry can help: 5xx and 429 answers, a
    /// refused connection, a connection that broke mid-answer. A timeout is
    /// not retried: `timeout` is what the user allowed one call, and a server
    /// that hung or crawled once would make a solve wait `retries + 1` times
    /// that before saying so.
    private func completeOnce(_ request: CompletionRequest) async throws -> CompletionResponse {
        let (path, body) = try encode(request)
        let url = baseURL.appendingPathComponent(path)
        var attempt = 0
        func retry() async throws -> Bool {
            guard attempt < options.retries else { return false }
            attempt += 1
            try await Task.sleep(for: .seconds(options.backoff * pow(2, Double(attempt - 1))))
            return true
        }
        while true {
            try Task.checkCancellation()
            let started = ContinuousClock.now
            let response: HTTPResponse
            do {
                response = try await transport.post(url, json: body, timeout: options.timeout)
            } catch let error as TransportError {
                switch error {
                case .cancelled:
                    throw CancellationError()
                case .timedOut(let s):
                    throw PolicyError.timedOut(baseURL.absoluteString, seconds: s)
                case .couldNotConnect:
                    if try await retry() { continue }
                    throw PolicyError.serverUnreachable(baseURL.absoluteString)
                case .connectionLost(let message):
                    if try await retry() { continue }
                    throw PolicyError.connectionLost(baseURL.absoluteString, detail: message, attempts: attempt + 1)
                case .other(_, let message):
                    if try await retry() { continue }
                    throw PolicyError.serverUnreachable("\(baseURL.absoluteString) (\(message))")
                }
            }
            if response.status == 200 {
                var decoded = try decode(response.body, n: request.n)
                decoded.cost.llmSeconds = (ContinuousClock.now - started).seconds
                return decoded
            }
            let detail = Self.errorDetail(response.body)
            if response.status == 400, detail.contains("context") || detail.contains("exceed") {
                throw PolicyError.contextTooLong(detail)
            }
            // 503 is llama-server still loading the model; 5xx and 429 are worth another try.
            if response.status >= 500 || response.status == 429, try await retry() { continue }
            throw PolicyError.http(status: response.status, detail: detail)
        }
    }

    // MARK: - Wire format

    func encode(_ r: CompletionRequest) throws -> (String, Data) {
        var json: [String: Any] = [
            "prompt": r.prompt,
            "temperature": r.sampling.temperature,
            "top_p": r.sampling.topP,
            "top_k": r.sampling.topK,
            "min_p": r.sampling.minP,
            "stop": r.stop,
        ]
        if let seed = r.seed { json["seed"] = seed }
        if options.supportsN { json["n"] = max(1, r.n) }
        let path: String
        switch options.flavor {
        case .llama:
            path = "completion"
            json["n_predict"] = r.maxTokens
            json["n_probs"] = 1
            json["cache_prompt"] = r.reuseCache
            if let slot = r.slot { json["id_slot"] = slot }
            json["response_fields"] = [
                "content", "stop_type", "tokens_predicted", "tokens_evaluated", "tokens_cached",
                "completion_probabilities", "timings",
            ]
        case .openai:
            path = "v1/completions"
            json["max_tokens"] = r.maxTokens
            json["logprobs"] = 1
            if let model = options.model { json["model"] = model }
        }
        return (path, try JSONSerialization.data(withJSONObject: json))
    }

    func decode(_ body: Data, n: Int) throws -> CompletionResponse {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: body)
        } catch {
            throw PolicyError.malformedResponse("not JSON: \(String(decoding: body.prefix(120), as: UTF8.self))")
        }
        let response: CompletionResponse
        switch options.flavor {
        case .llama: response = try decodeLlama(object)
        case .openai: response = try decodeOpenAI(object)
        }
        // Fewer choices than asked for are used as they are (the search weighs
        // what it got); none at all would end a search with no word of why.
        guard !response.choices.isEmpty || n < 1 else {
            throw PolicyError.malformedResponse("an answer without completions, though \(n) were asked for")
        }
        return response
    }

    /// Tokens of a choice whose server reported neither a count nor
    /// log-probabilities: about four characters each. Counting zero would let
    /// a search run past its token budget without end.
    static func estimatedTokens(_ text: String) -> Int {
        text.isEmpty ? 0 : max(1, (text.utf8.count + 3) / 4)
    }

    private func decodeLlama(_ object: Any) throws -> CompletionResponse {
        // One result is an object; several (`n` > 1) are an array of them.
        let results: [[String: Any]]
        if let one = object as? [String: Any] {
            results = [one]
        } else if let many = object as? [[String: Any]] {
            results = many
        } else {
            throw PolicyError.malformedResponse("expected an object or an array of results")
        }
        var cost = Cost()
        cost.llmCalls = 1
        var choices: [CompletionChoice] = []
        for (i, r) in results.enumerated() {
            guard let content = r["content"] as? String else {
                throw PolicyError.malformedResponse("result without `content`")
            }
            let stopType = r["stop_type"] as? String ?? "word"
            let probs = (r["completion_probabilities"] as? [[String: Any]]) ?? []
            let scored = probs.filter { $0["logprob"] is NSNumber }
            let logprobs = scored.compactMap { ($0["logprob"] as? NSNumber)?.doubleValue }
            let texts = scored.map { $0["token"] as? String ?? "" }
            let predicted = (r["tokens_predicted"] as? NSNumber)?.intValue
                ?? (probs.isEmpty ? Self.estimatedTokens(content) : probs.count)
            choices.append(CompletionChoice(
                text: content, tokenLogprobs: logprobs,
                finish: stopType == "eos" ? .endOfText : stopType == "limit" ? .length : .stop,
                tokens: predicted, tokenTexts: texts))
            cost.generatedTokens += predicted
            // The prompt is evaluated once for all `n` results: count it from the first.
            if i == 0 {
                let timings = r["timings"] as? [String: Any]
                let evaluated = (timings?["prompt_n"] as? NSNumber)?.intValue
                let cached = (timings?["cache_n"] as? NSNumber)?.intValue ?? (r["tokens_cached"] as? NSNumber)?.intValue ?? 0
                let total = (r["tokens_evaluated"] as? NSNumber)?.intValue ?? 0
                cost.promptTokens = evaluated ?? max(0, total - cached)
                cost.cachedPromptTokens = cached
            }
        }
        return CompletionResponse(choices: choices, cost: cost)
    }

    private func decodeOpenAI(_ object: Any) throws -> CompletionResponse {
        guard let root = object as? [String: Any], let rawChoices = root["choices"] as? [[String: Any]] else {
            throw PolicyError.malformedResponse("no `choices` array")
        }
        var cost = Cost()
        cost.llmCalls = 1
        var completionTokens: Int?
        if let u = root["usage"] as? [String: Any] {
            completionTokens = (u["completion_tokens"] as? NSNumber)?.intValue
            let prompt = (u["prompt_tokens"] as? NSNumber)?.intValue ?? 0
            let cached = ((u["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? NSNumber)?.intValue ?? 0
            cost.promptTokens = max(0, prompt - cached)
            cost.cachedPromptTokens = cached
        }
        var choices: [CompletionChoice] = []
        for c in rawChoices.sorted(by: { (($0["index"] as? Int) ?? 0) < (($1["index"] as? Int) ?? 0) }) {
            guard let text = c["text"] as? String else { throw PolicyError.malformedResponse("choice without `text`") }
            let logprobs = Self.openAILogprobs(c["logprobs"])
            let texts = Self.openAITokenTexts(c["logprobs"], count: logprobs.count)
            // vLLM reports which stop string matched in `stop_reason` (null for
            // end-of-text); servers without it cannot tell the two apart.
            let finish: FinishReason
            switch c["finish_reason"] as? String {
            case "length": finish = .length
            case "stop":
                if c.keys.contains("stop_reason"), !(c["stop_reason"] is String) { finish = .endOfText } else { finish = .stop }
            default: finish = .stop
            }
            // `usage.completion_tokens` counts one choice only: count each choice's own tokens,
            // from usage only when there is one choice, else estimated, when the server sent no log-probabilities.
            let tokens = !logprobs.isEmpty ? logprobs.count
                : rawChoices.count == 1 ? completionTokens ?? Self.estimatedTokens(text) : Self.estimatedTokens(text)
            choices.append(CompletionChoice(text: text, tokenLogprobs: logprobs, finish: finish, tokens: tokens, tokenTexts: texts))
            cost.generatedTokens += tokens
        }
        return CompletionResponse(choices: choices, cost: cost)
    }

    /// Two shapes exist: llama.cpp's `{content: [{logprob}]}` and the classic `{token_logprobs: []}`.
    static func openAILogprobs(_ raw: Any?) -> [Double] {
        guard let dict = raw as? [String: Any] else { return [] }
        if let content = dict["content"] as? [[String: Any]] {
            return content.compactMap { ($0["logprob"] as? NSNumber)?.doubleValue }
        }
        if let list = dict["token_logprobs"] as? [Any] {
            return list.compactMap { ($0 as? NSNumber)?.doubleValue }
        }
        return []
    }

    /// Token texts beside `openAILogprobs`; empty unless there is one per log-probability.
    static func openAITokenTexts(_ raw: Any?, count: Int) -> [String] {
        guard let dict = raw as? [String: Any] else { return [] }
        var texts: [String] = []
        if let content = dict["content"] as? [[String: Any]] {
            texts = content.filter { $0["logprob"] is NSNumber }.map { $0["token"] as? String ?? "" }
        } else if let list = dict["tokens"] as? [Any], let lps = dict["token_logprobs"] as? [Any], list.count == lps.count {
            texts = zip(list, lps).filter { $0.1 is NSNumber }.map { $0.0 as? String ?? "" }
        }
        return texts.count == count ? texts : []
    }

    static func errorDetail(_ body: Data) -> String {
        if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] {
            if let error = object["error"] as? [String: Any], let message = error["message"] as? String { return message }
            if let message = object["error"] as? String { return message }
        }
        return String(decoding: body.prefix(200), as: UTF8.self)
    }

    /// `GET /health`: true once the model is loaded (llama-server answers 503 while loading).
    public func health(timeout: Double = 2) async -> Bool {
        guard let response = try? await transport.get(baseURL.appendingPathComponent("health"), timeout: timeout) else {
            return false
        }
        return response.status == 200
    }
}
