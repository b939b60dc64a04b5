import Policy
import PythonSyntax

/// One step of a sampled episode, with the policy's log-probabilities.
struct SampledStep: Equatable {
    var text: String
    var logprobSum: Double
    var tokens: Int
    /// The log-probability of the step's code (its comments and blank lines left out).
    var decisionLogprob: Double
}

/// Splits a completion into steps: physical lines, or logical lines of code
/// with the comments and blank lines before them (a block header together
/// with its first statement, since the header alone decides little).
enum StepSplitter {
    struct Line {
        var text: String
        var logprob = 0.0
        var tokens = 0
    }

    /// Physical lines with each token's log-probability booked on the line
    /// where the token starts (a token "):\n" belongs to the line it closes).
    static func lines(of choice: CompletionChoice) -> [Line] {
        var lines = choice.text.split(separator: "\n", omittingEmptySubsequences: false).map { Line(text: String($0)) }
        if choice.tokenTexts.count == choice.tokenLogprobs.count, !choice.tokenTexts.isEmpty {
            var line = 0
            for (text, lp) in zip(choice.tokenTexts, choice.tokenLogprobs) {
                if line < lines.count {
                    lines[line].logprob += lp
                    lines[line].tokens += 1
                }
                line += text.reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }
            }
        } else if !choice.tokenLogprobs.isEmpty {
            // No token texts: spread the log-probability over the lines by length.
            let total = max(1, lines.reduce(0) { $0 + $1.text.count + 1 })
            let sum = choice.logprobSum, count = choice.tokenLogprobs.count
            for i in lines.indices {
                let share = Double(lines[i].text.count + 1) / Double(total)
                lines[i].logprob = sum * share
                lines[i].tokens = max(1, Int((Double(count) * share).rounded()))
            }
        }
        // Trailing blank lines are not part of the program.
        while let last = lines.last, last.text.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) {
            if lines.count >= 2 {
                lines[lines.count - 2].logprob += last.logprob
                lines[lines.count - 2].tokens += last.tokens
            }
            lines.removeLast()
        }
        return lines
    }

    static func steps(of choice: CompletionChoice, shape: StepShape) -> [SampledStep] {
        let lines = lines(of: choice)
        switch shape {
        case .lines:
            return lines.map { SampledStep(text: $0.text, logprobSum: $0.logprob, tokens: $0.tokens, decisionLogprob: $0.logprob) }
        case .code:
            return code(lines)
        }
    }

    static func isCode(_ line: String) -> Bool {
        let t = line.drop(while: { $0 == " " || $0 == "\t" })
        return !t.isEmpty && t.first != "#"
    }

    /// Groups physical lines into code steps.
    static func code(_ lines: [Line]) -> [SampledStep] {
        let continued = TestFile.continuedLines(lines.map(\.text).joined(separator: "\n"), count: lines.count)
        var steps: [SampledStep] = []
        var texts: [String] = []
        var logprob = 0.0, tokens = 0, decision = 0.0
        var hasCode = false, openHeader = false
        func close() {
            steps.append(SampledStep(text: texts.joined(separator: "\n"), logprobSum: logprob, tokens: tokens,
                                     decisionLogprob: decision))
            texts = []
            logprob = 0
            tokens = 0
            decision = 0
            hasCode = false
        }
        for (i, line) in lines.enumerated() {
            let inside = continued[i]
            let code = inside || isCode(line.text)
            // A step is a logical line of code with the comments and blank
            // lines before it: anything but a continuation after a finished
            // code line starts the next step, unless that line was a block
            // header still waiting for its first statement.
            if !inside, hasCode, !openHeader { close() }
            texts.append(line.text)
            logprob += line.logprob
            tokens += line.tokens
            if code {
                decision += line.logprob
                if !inside { hasCode = true }
                let endsLogicalLine = !(i + 1 < lines.count && continued[i + 1])
                if endsLogicalLine { openHeader = logicalEnd(lines, upTo: i) == ":" }
            }
        }
        if !texts.isEmpty { close() }
        return steps
    }

    /// The end of the logical line that closes at physical line `i`, without
    /// its comment or trailing space: enough to see a block header's colon.
    static func logicalEnd(_ lines: [Line], upTo i: Int) -> Substring {
        let text = lines[i].text
        let tokens = PythonTokenizer.codeTokens(text)
        guard let last = tokens.last else { return "" }
        return last.text
    }
}
