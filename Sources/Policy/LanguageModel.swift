import Basics
import Foundation

/// Sampling settings are always sent explicitly: llama-server's defaults
/// (top_k 40, top_p 0.95, min_p 0.05) would silently change what "temperature
/// 0.8" means between servers.
public struct Sampling: Sendable, Hashable, Codable {
    public var temperature: Double
    public var topP: Double
    public var topK: Int
    public var minP: Double
    public init(temperature: Double, topP: Double = 1, topK: Int = 0, minP: Double = 0) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.minP = minP
    }
    public static let greedy = Sampling(temperature: 0)
}

public struct CompletionRequest: Sendable, Hashable {
    public var prompt: String
    /// Completions wanted from this one prompt (one request where the server supports `n`).
    public var n: Int
    public var maxTokens: Int
    public var stop: [String]
    public var sampling: Sampling
    public var seed: UInt64?
    /// Routes related requests to one server slot so its prefix cache is reused.
    public var slot: Int?
    /// Whether the server may start from what its cache holds. llama.cpp's
    /// decoding is not bit-identical between a prefix it evaluates now and the
    /// same prefix cached from another request, so a benchmark that wants a
    /// task's programs independent of the tasks before it starts each task
    /// with `false` (see `FreshStartModel`).
    public var reuseCache: Bool

    public init(prompt: String, n: Int = 1, maxTokens: Int, stop: [String] = [], sampling: Sampling = .greedy,
                seed: UInt64? = nil, slot: Int? = nil, reuseCache: Bool = true) {
        self.prompt = prompt
        self.n = n
        self.maxTokens = maxTokens
        self.stop = stop
        self.sampling = sampling
        self.seed = seed
        self.slot = slot
        self.reuseCache = reuseCache
    }
}

public enum FinishReason: String, Sendable, Codable {
    /// Hit one of the request's stop strings.
    case stop
    /// The model ended its turn (end-of-text token).
    case endOfText
    /// Ran into `maxTokens`.
    case length
}

public struct CompletionChoice: Sendable, Hashable, Codable {
    public var text: String
    /// Log-probability of each generated token the server reported. The token
    /// that contained the stop string is often missing (llama-server drops it).
    public var tokenLogprobs: [Double]
    public var finish: FinishReason
    public var tokens: Int
    /// The text of each token in `tokenLogprobs` (same order) when the server
    /// reports it, so log-probabilities can be attributed to lines; else empty.
    public var tokenTexts: [String]

    public init(text: String, tokenLogprobs: [Double], finish: FinishReason, tokens: Int, tokenTexts: [String] = []) {
        self.text = text
        self.tokenLogprobs = tokenLogprobs
        self.finish = finish
        self.tokens = tokens
        self.tokenTexts = tokenTexts
    }

    public var logprobSum: Double { tokenLogprobs.reduce(0, +) }
    public var logprobMean: Double { tokenLogprobs.isEmpty ? 0 : logprobSum / Double(tokenLogprobs.count) }
}

public struct CompletionResponse: Sendable {
    public var choices: [CompletionChoice]
    /// What the call cost, from the server's own accounting (`llmSeconds` is the client's wall time).
    public var cost: Cost
    public init(choices: [CompletionChoice], cost: Cost) {
        self.choices = choices
        self.cost = cost
    }
}

/// The policy's seam: anything that completes text.
public protocol LanguageModel: Sendable {
    func complete(_ request: CompletionRequest) async throws -> CompletionResponse
}

public enum PolicyError: Error, Sendable, CustomStringConvertible, Equatable {
    case serverUnreachable(String)
    case timedOut(String, seconds: Double)
    /// The server took the request and broke the connection before a whole
    /// answer, on every attempt: the URL, curl's reason, the attempts made.
    case connectionLost(String, detail: String, attempts: Int)
    case http(status: Int, detail: String)
    case contextTooLong(String)
    case malformedResponse(String)
    /// The model file and the command that fetches it.
    case modelMissing(String, fix: String)
    case serverBinaryMissing(String)
    case serverFailedToStart(String)
    /// The embedded server runs but stopped answering.
    case embeddedServerUnreachable(String, log: String)
    /// The embedded server died under a call, was restarted, and died again.
    case embeddedServerCrashed(log: String)
    case cancelled

    public var description: String {
        switch self {
        case .serverUnreachable(let url):
            return "cannot reach the LLM server at \(url): start it, or unset the endpoint so qcode starts its embedded llama-server"
        case .timedOut(let url, let s):
            return "the LLM server at \(url) did not answer within \(Self.seconds(s)) s (llm_timeout): it is hung or overloaded; "
                + "check it, raise --llm-timeout, or lower -k"
        case .connectionLost(let url, let detail, let attempts):
            return "the LLM server at \(url) broke the connection before a whole answer (\(detail)), \(attempts) time(s): "
                + "it may be crashing or restarting; check its log, then retry"
        case .http(let status, let detail):
            let what = detail.isEmpty ? "" : " (\(detail))"
            switch status {
            case 503:
                return "the LLM server answered HTTP 503\(what), also after qcode's retries: it is still loading its model or is "
                    + "overloaded; retry once its /health answers 200"
            case 429:
                return "the LLM server answered HTTP 429\(what), also after qcode's retries: it limits qcode's rate; "
                    + "lower -k or max_concurrent_solves, or retry later"
            case 500...:
                return "the LLM server answered HTTP \(status)\(what), also after qcode's retries: it failed on this request; "
                    + "see the server's log"
            case 404:
                return "the LLM server answered HTTP 404\(what): check --endpoint (the server's base URL, without /v1) and --api "
                    + "(llama: /completion, openai: /v1/completions)"
            default:
                return "the LLM server refused the request with HTTP \(status)\(what): check --api and --model-name"
            }
        case .contextTooLong(let detail):
            return "the prompt does not fit the model's context (\(detail)): shorten the task or start the server with a larger context (-c)"
        case .malformedResponse(let detail):
            return "the LLM server sent a response qcode cannot read (\(detail)): check that the endpoint is an OpenAI-compatible or llama.cpp server"
        case .modelMissing(let path, let fix):
            return "model file \(path) not found: run `\(fix)` to fetch it (or set model_path, QCODE_MODEL_PATH, to a GGUF file)"
        case .serverBinaryMissing(let path):
            return "llama-server not found at \(path): run scripts/bootstrap"
        case .serverFailedToStart(let detail):
            return "the embedded llama-server did not start: \(detail)"
        case .embeddedServerUnreachable(let url, let log):
            return "the embedded llama-server at \(url) is running but stopped answering; see its log \(log), or restart the daemon with `qcode stop`"
        case .embeddedServerCrashed(let log):
            return "the embedded llama-server crashed during this call, was restarted, and crashed again: see its log \(log) "
                + "(out of memory? a broken binary?); `qcode doctor` checks the server and the model"
        case .cancelled:
            return "cancelled"
        }
    }

    /// "0.5", "600": seconds as a user wrote them.
    static func seconds(_ s: Double) -> String {
        s == s.rounded() && abs(s) < 1e15 ? String(Int(s)) : String(format: "%g", s)
    }
}
