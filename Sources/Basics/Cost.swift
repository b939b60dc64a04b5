/// The cost ledger every method shares, from one LLM call to a whole benchmark
/// run, so comparisons are at equal budget and the daemon's meter adds up the
/// same figures the search stops on.
public struct Cost: Sendable, Hashable, Codable {
    public var llmCalls = 0
    /// Prompt tokens the server had to evaluate.
    public var promptTokens = 0
    /// Prompt tokens served from the server's prefix cache.
    public var cachedPromptTokens = 0
    /// Tokens generated, summed over every choice of every call.
    public var generatedTokens = 0
    public var llmSeconds = 0.0
    public var verifierRuns = 0
    public var verifierSeconds = 0.0

    public init(llmCalls: Int = 0, promptTokens: Int = 0, cachedPromptTokens: Int = 0, generatedTokens: Int = 0,
                llmSeconds: Double = 0, verifierRuns: Int = 0, verifierSeconds: Double = 0) {
        self.llmCalls = llmCalls
        self.promptTokens = promptTokens
        self.cachedPromptTokens = cachedPromptTokens
        self.generatedTokens = generatedTokens
        self.llmSeconds = llmSeconds
        self.verifierRuns = verifierRuns
        self.verifierSeconds = verifierSeconds
    }

    public static func + (a: Cost, b: Cost) -> Cost {
        var c = a
        c += b
        return c
    }

    public static func += (a: inout Cost, b: Cost) {
        a.llmCalls += b.llmCalls
        a.promptTokens += b.promptTokens
        a.cachedPromptTokens += b.cachedPromptTokens
        a.generatedTokens += b.generatedTokens
        a.llmSeconds += b.llmSeconds
        a.verifierRuns += b.verifierRuns
        a.verifierSeconds += b.verifierSeconds
    }

    /// Share of all prompt tokens that came from the server's cache.
    public var cacheShare: Double {
        let total = promptTokens + cachedPromptTokens
        return total == 0 ? 0 : Double(cachedPromptTokens) / Double(total)
    }
}
