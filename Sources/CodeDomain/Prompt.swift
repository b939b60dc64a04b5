/// How the task is put to the model.
public enum PromptStyle: String, Sendable, Codable, CaseIterable {
    /// Qwen/ChatML instruct template, the assistant turn pre-filled with a
    /// ```python fence and the code so far, so the model continues the program.
    case chatml
    /// A plain completion prompt for base models: the task as a comment block.
    case plain
}

/// How the task is put to the policy before its code starts. Each framing is
/// another distribution over programs: sampling one prompt harder soon draws
/// what it drew before, so a search may open an attempt under each (`--framings`).
public enum Framing: String, Sendable, Hashable, Codable, CaseIterable {
    /// The task and its visible tests, then the code. The instruct models
    /// write a comment before most lines.
    case instruct
    /// Three short worked examples (a task, its test, a terse program) as
    /// earlier turns of the chat, then the task. The policy then writes
    /// programs in the examples' style, in about half the tokens. Chat prompts
    /// for described tasks only: a stub or a plain prompt is put as `instruct`.
    case examples
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
    public func prefix(for task: CodeTask, framing: Framing = .instruct, attempt: Attempt?) -> String {
        let first = prefix(for: task, framing: framing)
        guard let attempt, style == .chatml else { return first }
        return first + attempt.failedProgram + "```<|im_end|>\n<|im_start|>user\n" + attempt.feedback
            + "\nWrite the corrected code.<|im_end|>\n<|im_start|>assistant\n```python\n"
    }

    public func prefix(for task: CodeTask, framing: Framing = .instruct) -> String {
        if let stub = task.stub { return prefix(for: stub) }
        let tests = task.tests.joined(separator: "\n")
        switch style {
        case .chatml:
            let shots = framing == .examples ? Self.examples.map { Self.turn($0.task, $0.tests, answer: $0.program) }.joined() : ""
            return "<|im_start|>system\n\(system)<|im_end|>\n" + shots + Self.turn(task.text, task.tests, answer: nil)
        case .plain:
            let plural = task.tests.count == 1 ? "this test" : "these tests"
            let text = task.text.split(separator: "\n").map { "# \($0)" }.joined(separator: "\n")
            let shown = tests.split(separator: "\n").map { "# \($0)" }.joined(separator: "\n")
            return "\(text)\n# Your code should pass \(plural):\n\(shown)\n\n"
        }
    }

    /// One exchange of the chat: the task with its tests from the user, then the
    /// assistant's fenced program (left open when `answer` is nil, for the policy to write).
    static func turn(_ text: String, _ tests: [String], answer: String?) -> String {
        let plural = tests.count == 1 ? "this test" : "these tests"
        let opened = "<|im_start|>user\n\(text)\nYour code should pass \(plural):\n\(tests.joined(separator: "\n"))<|im_end|>\n"
            + "<|im_start|>assistant\n```python\n"
        return answer.map { opened + $0 + "\n```<|im_end|>\n" } ?? opened
    }

    /// The worked examples of `Framing.examples`: written for qcode, in MBPP's
    /// shape but not from it (no benchmark task leaks into the prompt), terse
    /// on purpose, and varied (an expression, a loop with an early return, a dictionary).
    static let examples: [(task: String, tests: [String], program: String)] = [
        ("Write a function to find the sum of the squares of the even numbers in a list.",
         ["assert sum_even_squares([1, 2, 3, 4]) == 20"],
         "def sum_even_squares(nums):\n    return sum(x * x for x in nums if x % 2 == 0)"),
        ("Write a python function to check whether the round brackets in a string are balanced.",
         [#"assert is_balanced("(()())") == True"#],
         """
         def is_balanced(s):
             depth = 0
             for ch in s:
                 if ch == '(':
                     depth += 1
                 elif ch == ')':
                     depth -= 1
                     if depth < 0:
                         return False
             return depth == 0
         """),
        ("Write a function to merge two dictionaries, adding up the values of the keys they share.",
         ["assert merge_add({'a': 1, 'b': 2}, {'b': 3, 'c': 4}) == {'a': 1, 'b': 5, 'c': 4}"],
         """
         def merge_add(d1, d2):
             result = dict(d1)
             for key, value in d2.items():
                 result[key] = result.get(key, 0) + value
             return result
         """),
    ]

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
