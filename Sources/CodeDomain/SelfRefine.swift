import Basics
import Foundation
import Policy
import QStar

/// MCTSr's three conversations, on top of the task prompt. The wording follows
/// the MCTSr paper's prompts (harsh critique, strict scoring, full marks
/// withheld), turned from maths answers to code; the critique is also told what
/// the visible test said, since a programmer criticising code would run it.
extension PromptBuilder {
    static let critiqueRequest = """
        Since this code is a weak answer, give a reflection on it to correct it: analyse it strictly and critically, \
        point out every flaw and every possible imperfection, and say how to fix each. Be brief.
        """
    static let refineRequest = "Rewrite the code following your reflection. Give only the corrected code."
    static let evaluationRequest = """
        Analyse this code strictly and critically and point out every flaw. Be very harsh in grading and never give \
        full marks. Then score how likely the code is to be correct, from -100 to +100.
        Response format:
        [Analyst]...[Score]...
        """

    /// The task, the program as the assistant's answer, then `request` from the user.
    func conversation(for task: CodeTask, framing: Framing, program: String, request: String) -> String {
        prefix(for: task, framing: framing) + program + "```<|im_end|>\n<|im_start|>user\n" + request + "<|im_end|>\n<|im_start|>assistant\n"
    }

    public func critique(for task: CodeTask, framing: Framing = .instruct, program: String, feedback: String?) -> String {
        let said = feedback.map { $0 + "\n" } ?? ""
        return conversation(for: task, framing: framing, program: program, request: said + Self.critiqueRequest)
    }

    public func refinement(for task: CodeTask, framing: Framing = .instruct, program: String, feedback: String?,
                           critique: String) -> String {
        self.critique(for: task, framing: framing, program: program, feedback: feedback) + critique
            + "<|im_end|>\n<|im_start|>user\n" + Self.refineRequest + "<|im_end|>\n<|im_start|>assistant\n```python\n"
    }

    /// The answer is pre-filled with "[Analyst]" so every sample starts in the asked format.
    public func selfEvaluation(for task: CodeTask, framing: Framing = .instruct, program: String) -> String {
        conversation(for: task, framing: framing, program: program, request: Self.evaluationRequest) + "[Analyst]"
    }

    /// The score an evaluation gives: the first number after its last
    /// "Score"; nil when there is none (the sample is dropped, not read as 0).
    public static func score(in text: String) -> Double? {
        guard let mark = text.range(of: "score", options: [.caseInsensitive, .backwards]) else { return nil }
        let rest = text[mark.upperBound...]
        guard let number = rest.firstMatch(of: /[-+−]?\s*\d+(?:\.\d+)?/) else { return nil }
        let digits = number.output.replacingOccurrences(of: "−", with: "-").filter { !$0.isWhitespace }
        return Double(digits.hasPrefix("+") ? String(digits.dropFirst()) : digits)
    }
}

extension CodeSearchDomain {
    /// Tokens a critique or an evaluation may take: enough for a few sentences.
    static let critiqueTokens = 200
    static let evaluationTokens = 150

    func requireChat() throws {
        guard prompts.style == .chatml else {
            throw UnsupportedByDomain(planner: "mctsr", capability: "hold a conversation (the chatml prompt style)")
        }
    }

    public func placeholder() -> CodeState? {
        let program = "# I don't know.\n"
        let parsed = syntax.parse(program)
        return CodeState(program: program, finished: true, parsed: parsed, facts: codeFacts(parsed, entryPoint: entryPoint),
                         framing: root.framing)
    }

    public func critique(_ state: CodeState, after verification: Verification?, seed: UInt64) async throws -> Critique {
        try requireChat()
        let said = verification.map { self.feedback(on: state.program, $0) }
        let response = try await model.complete(CompletionRequest(
            prompt: prompts.critique(for: task, framing: state.framing, program: state.program, feedback: said), n: 1,
            maxTokens: Self.critiqueTokens, stop: ["<|im_end|>"],
            sampling: Sampling(temperature: options.search.temperature), seed: seed, slot: slot))
        let text = response.choices.first?.text.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return Critique(text: text, feedback: said, cost: response.cost)
    }

    public func refine(_ state: CodeState, following critique: Critique, seed: UInt64) async throws -> (state: CodeState, cost: Cost) {
        try requireChat()
        // The rewrite starts where every program of this task starts (a stub: the module up to the body).
        let start = root.program
        let response = try await model.complete(CompletionRequest(
            prompt: prompts.refinement(for: task, framing: state.framing, program: state.program, feedback: critique.feedback,
                                       critique: critique.text) + start,
            n: 1, maxTokens: options.maxProgramTokens, stop: prompts.endMarkers + task.stops,
            sampling: Sampling(temperature: options.search.temperature), seed: seed, slot: slot))
        let text = task.clip(response.choices.first?.text ?? "", after: start).text
        let code = String((start + text).reversed().drop(while: \.isWhitespace).reversed())
        let program = code.isEmpty ? "" : code + "\n"
        let parsed = syntax.parse(program)
        return (CodeState(program: program, finished: true, parsed: parsed, facts: codeFacts(parsed, entryPoint: entryPoint),
                          framing: state.framing), response.cost)
    }

    public func selfEvaluate(_ state: CodeState, n: Int, seed: UInt64) async throws -> (scores: [Double?], cost: Cost) {
        try requireChat()
        let response = try await model.complete(CompletionRequest(
            prompt: prompts.selfEvaluation(for: task, framing: state.framing, program: state.program), n: n,
            maxTokens: Self.evaluationTokens, stop: ["<|im_end|>"],
            sampling: Sampling(temperature: options.search.temperature), seed: seed, slot: slot))
        return (response.choices.map { PromptBuilder.score(in: $0.text) }, response.cost)
    }
}
