/// How the task is put to the model.
public enum PromptStyle: String, Sendable, Codable, CaseIterable {
    /// Qwen/ChatML instruct template, the assistant turn pre-filled with a
    /// ```python fence and the code so far, so the model continues the program.
    case chatml
    /// A plain completion prompt for base models: the task as a comment block.
    case plain
}

/// Builds prompts whose task part is byte-identical across calls, so a server's
/// prefix cache serves it and only the newest line is evaluated.
public struct PromptBuilder: Sendable, Hashable {
    public var style: PromptStyle
    public var system: String

    public init(style: PromptStyle = .chatml,
                system: String = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.") {
        self.style = style
        self.system = system
    }

    /// The fixed part: everything before the first line of code. On a second
    /// try, the conversation goes on: the failed program as the assistant's
    /// answer, the verifier's feedback as the user's reply, and a fresh fence.
    public func prefix(for task: CodeTask, attempt: Attempt?) -> String {
        let first = prefix(for: task)
        guard let attempt, style == .chatml else { return first }
        return first + attempt.failedProgram + "```<|im_end|>\n<|im_start|>user\n" + attempt.feedback
            + "\nWrite the corrected code.<|im_end|>\n<|im_start|>assistant\n```python\n"
    }

    public func prefix(for task: CodeTask) -> String {
        if let stub = task.stub { return prefix(for: stub) }
        let tests = task.tests.joined(separator: "\n")
        let plural = task.tests.count == 1 ? "this test" : "these tests"
        switch style {
        case .chatml:
            return """
            <|im_start|>system
            \(system)<|im_end|>
            <|im_start|>user
            \(task.text)
            Your code should pass \(plural):
            \(tests)<|im_end|>
            <|im_start|>assistant
            ```python

            """
        case .plain:
            let text = task.text.split(separator: "\n").map { "# \($0)" }.joined(separator: "\n")
            let shown = tests.split(separator: "\n").map { "# \($0)" }.joined(separator: "\n")
            return "\(text)\n# Your code should pass \(plural):\n\(shown)\n\n"
        }
    }

    /// A stub, HumanEval's shape: the code so far (the search's root state) is the module
    /// up to the body, so the model continues the function from its signature and
    /// docstring. The code after the function is context in the request.
    func prefix(for stub: StubContext) -> String {
        let name = stub.function
        let after = stub.tail.trimmingCharacters(in: .whitespacesAndNewlines)
        switch style {
        case .chatml:
            var request = "Complete the Python function `\(name)`: write its body, keeping its signature and docstring."
            if !after.isEmpty {
                request += "\nThe module continues after the function:\n```python\n\(Self.excerpt(after))\n```"
            }
            return """
            <|im_start|>system
            \(system)<|im_end|>
            <|im_start|>user
            \(request)<|im_end|>
            <|im_start|>assistant
            ```python

            """
        case .plain:
            return "# Complete the function `\(name)`, keeping its signature and docstring.\n"
        }
    }

    /// At most ~60 lines of the code after a stub: context, not the task.
    static func excerpt(_ text: String, lines: Int = 60) -> String {
        let all = text.split(separator: "\n", omittingEmptySubsequences: false)
        return all.count <= lines ? text : all.prefix(lines).joined(separator: "\n") + "\n# ..."
    }

    /// The prompt for the next step after `lines`.
    public func prompt(for task: CodeTask, lines: [String]) -> String {
        let code = lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
        return prefix(for: task) + code
    }

    /// Top-level lines that begin the test code models append after a
    /// solution (`# Test cases…`, asserts, prints): no program needs them, and
    /// every method would pay for their tokens.
    static let trailers = ["assert ", "print(", "if __name__", "# Test", "# test", "# Example", "# example"]

    /// What ends a whole program in this style.
    public var endMarkers: [String] {
        switch style {
        case .chatml: return ["```", "<|im_end|>"] + Self.trailers.map { "\n" + $0 }
        case .plain: return ["\n\n\n", "\nassert", "\nprint(", "\nif __name__"]
        }
    }

    /// True when a generated line is the end of the program rather than code.
    public func isEndMarker(_ line: String) -> Bool {
        let t = line.trimmingCharacters(in: .whitespaces)
        guard style == .chatml else { return false }
        return t.hasPrefix("```") || t.hasPrefix("<|im_end|>") || Self.trailers.contains { line.hasPrefix($0) }
    }
}
