import Basics
import Foundation
import Policy
import PythonSyntax
import QStar
import Sandbox
import Synchronization

/// The code so far. Each state keeps its own parse so a child reparses
/// incrementally from its parent's tree.
public struct CodeState: Sendable {
    /// The program text exactly as parsed and as shown to the policy. With line
    /// steps it ends with a newline; a token step may leave a line unfinished.
    public let program: String
    /// The policy ended the program (or a limit did): a terminal state.
    public let finished: Bool
    public let parsed: ParsedProgram
    public let facts: CodeFacts
    /// When this program is a second try: the failed one and what the verifier said.
    public var attempt: Attempt?
    /// How the task was put to the policy for this program.
    public var framing: Framing

    public init(program: String, finished: Bool, parsed: ParsedProgram, facts: CodeFacts, attempt: Attempt? = nil,
                framing: Framing = .instruct) {
        self.program = program
        self.finished = finished
        self.parsed = parsed
        self.facts = facts
        self.attempt = attempt
        self.framing = framing
    }

    public var lines: [String] {
        var lines = program.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }
}

/// A failed program and the verifier's feedback on it, shown to the policy
/// when it writes the program again.
public struct Attempt: Sendable, Hashable {
    public var failedProgram: String
    public var feedback: String
}

/// One step: a line of code (or, with token steps, a chunk of text), the end
/// of the program, or a last step that the model ended the program right after.
public struct CodeAction: Sendable, Hashable {
    public var line: String?
    public var ends: Bool
    /// A raw chunk of N tokens, appended as is (no newline added).
    public var chunk: Bool
    public init(line: String?, ends: Bool, chunk: Bool = false) {
        self.line = line
        self.ends = ends
        self.chunk = chunk
    }
}

/// Runs a finished program against tests. The jail in production; scripted
/// verifiers in unit tests.
public protocol ProgramVerifier: Sendable {
    func run(_ job: JailJob) async throws -> TestReport
}

extension JailRunner: ProgramVerifier {}
extension Jail: ProgramVerifier {}

/// One parser per search: a TSParser is not thread-safe, and a search applies
/// actions one at a time anyway.
final class SyntaxSession: Sendable {
    private let parser: Mutex<PythonParser>
    init() throws { parser = Mutex(try PythonParser()) }
    func parse(_ source: String) -> ParsedProgram { parser.withLock { $0.parse(source) } }
    func extend(_ parent: ParsedProgram, _ text: String) -> ParsedProgram {
        parser.withLock { $0.extend(parent, appending: text) }
    }
}

/// Verdicts of this search's programs, so the evidence for the program a
/// search returns comes from the run that judged it, not from a second run.
final class VerdictMemo: Sendable {
    private let reports = Mutex<[String: TestReport]>([:])
    func store(_ report: TestReport, for program: String) { reports.withLock { $0[program] = report } }
    func report(for program: String) -> TestReport? { reports.withLock { $0[program] } }
}

/// Q*'s code specialisation: states are partial programs, actions are lines,
/// the verifier is the jail on the task's visible tests.
public struct CodeSearchDomain: PlanningDomain {
    public let task: CodeTask
    public let model: any LanguageModel
    public let verifier: any ProgramVerifier
    public let prompts: PromptBuilder
    public let options: SolveOptions
    /// Server slot this search's requests are pinned to, for its prefix cache.
    public let slot: Int?
    public let entryPoint: EntryPoint?
    /// R_P per syntax verdict: not a user option, the shape of the reward.
    public let reward = ProcessRewardValues()
    let syntax: SyntaxSession
    let memo = VerdictMemo()
    let probes: Probes
    public let root: CodeState

    public init(task: CodeTask, model: any LanguageModel, verifier: any ProgramVerifier,
                prompts: PromptBuilder = PromptBuilder(), options: SolveOptions = SolveOptions(), slot: Int? = nil) throws {
        self.task = task
        self.model = model
        self.verifier = verifier
        self.prompts = prompts
        self.options = options
        self.slot = slot
        self.entryPoint = task.entry
        self.probes = Probes(task: task)
        let syntax = try SyntaxSession()
        self.syntax = syntax
        // A stub's search starts from the module up to the body; others from nothing.
        let parsed = syntax.parse(task.initialProgram)
        self.root = CodeState(program: task.initialProgram, finished: false, parsed: parsed,
                              facts: codeFacts(parsed, entryPoint: entryPoint), framing: options.framings.first ?? .instruct)
    }

    public func propose(from state: CodeState, k: Int, seed: UInt64) async throws -> Expansion<CodeAction> {
        guard !state.finished else { return Expansion(proposals: [], cost: Cost()) }
        let request = CompletionRequest(
            prompt: prompt(for: state), n: k,
            maxTokens: options.stepTokens ?? options.maxLineTokens,
            stop: options.stepTokens == nil ? ["\n"] : prompts.endMarkers + task.stops,
            sampling: Sampling(temperature: options.search.temperature), seed: seed, slot: slot)
        let response = try await model.complete(request)
        var merged: [CodeAction: Proposal<CodeAction>] = [:]
        var order: [CodeAction] = []
        for choice in response.choices {
            let action = self.action(from: choice, after: state.program)
            if var existing = merged[action] {
                existing.count += 1
                if choice.logprobMean > existing.logprobMean {
                    existing.logprobMean = choice.logprobMean
                    existing.logprobSum = choice.logprobSum
                }
                merged[action] = existing
            } else {
                merged[action] = Proposal(action: action, logprobMean: choice.logprobMean, logprobSum: choice.logprobSum,
                                          tokens: max(1, choice.tokenLogprobs.count))
                order.append(action)
            }
        }
        return Expansion(proposals: order.map { merged[$0]! }, cost: response.cost)
    }

    func action(from choice: CompletionChoice, after program: String = "") -> CodeAction {
        if options.stepTokens != nil {
            // A chunk ends the program when the model stopped on its own (an end marker or end of
            // text), or, for a stub, when it left the function.
            let (text, cut) = task.clip(choice.text, after: program)
            let ends = cut || choice.finish != .length
            return CodeAction(line: text.isEmpty ? nil : text, ends: ends, chunk: true)
        }
        let line = String(choice.text.reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed())
        if prompts.isEndMarker(line) || task.leavesFunction(line) { return CodeAction(line: nil, ends: true) }
        if choice.finish == .endOfText {
            return CodeAction(line: line.isEmpty ? nil : line, ends: true)
        }
        return CodeAction(line: line, ends: false)
    }

    /// The prompt that continues `state`: the task as its framing puts it (and,
    /// on a second try, the failed program and its feedback), then the code so far.
    func prompt(for state: CodeState) -> String {
        prompts.prefix(for: task, framing: state.framing, attempt: state.attempt) + state.program
    }

    /// The root under the other framings of `--framings`: fresh starts whose
    /// programs come from another prompt. A framing that gives this task the
    /// root's prompt (a stub, a plain prompt) adds nothing and is left out.
    public func alternatives() -> [(state: CodeState, label: String)] {
        var seen: Set<String> = [prompts.prefix(for: task, framing: root.framing)]
        return options.framings.dropFirst().compactMap { framing in
            guard seen.insert(prompts.prefix(for: task, framing: framing)).inserted else { return nil }
            var state = root
            state.framing = framing
            return (state, "framing: \(framing.rawValue)")
        }
    }

    public func continuations(from state: CodeState, n: Int, temperature: Double, seed: UInt64) async throws -> Continuations<CodeAction> {
        guard !state.finished else { return Continuations(paths: [], cost: Cost()) }
        let request = CompletionRequest(
            prompt: prompt(for: state), n: n, maxTokens: options.maxProgramTokens, stop: prompts.endMarkers + task.stops,
            sampling: Sampling(temperature: temperature), seed: seed, slot: slot)
        let response = try await model.complete(request)
        let paths = response.choices.map { choice -> [Proposal<CodeAction>] in
            // A stub's body ends where the text leaves the function.
            var kept = choice
            kept.text = task.clip(choice.text, after: state.program).text
            let steps = StepSplitter.steps(of: kept, shape: options.steps)
            guard !steps.isEmpty else {
                return [Proposal(action: CodeAction(line: nil, ends: true), logprobMean: 0, logprobSum: 0, tokens: 1)]
            }
            return steps.enumerated().map { i, step in
                Proposal(action: CodeAction(line: step.text, ends: i == steps.count - 1),
                         logprobMean: step.tokens == 0 ? 0 : step.logprobSum / Double(step.tokens),
                         logprobSum: step.logprobSum, tokens: max(1, step.tokens), decisionLogprob: step.decisionLogprob)
            }
        }
        return Continuations(paths: paths, cost: response.cost)
    }

    public func apply(_ action: CodeAction, to state: CodeState) -> CodeState {
        var program = state.program
        var parsed = state.parsed
        if let text = action.line {
            let appended = action.chunk ? text : text + "\n"
            program += appended
            parsed = syntax.extend(state.parsed, appended)
        }
        let ends = action.ends
        return CodeState(program: program, finished: ends, parsed: parsed, facts: codeFacts(parsed, entryPoint: entryPoint),
                         attempt: state.attempt, framing: state.framing)
    }

    public func processReward(of state: CodeState) -> Double {
        // A finished program that is still open (a header with no body) is as
        // wrong as one that does not parse.
        if state.finished && state.facts.verdict == .incomplete { return reward.broken }
        return CodeDomain.processReward(state.facts, values: reward)
    }

    public func isTerminal(_ state: CodeState) -> Bool { state.finished }

    /// Trailing whitespace and runs of blank lines do not make a program new;
    /// with code steps (and for finished programs) neither do comments. A
    /// second try's unfinished states are apart from the first's, and so are
    /// another framing's (their prompt differs); finished programs are one node
    /// whichever try or framing wrote them.
    public func key(of state: CodeState) -> String {
        let body = state.finished || options.steps == .code ? Self.codeOnly(state.program) : Self.trimmed(state.lines)
        if state.finished { return body + "\n<end>" }
        let framed = state.framing == root.framing ? body : "<\(state.framing.rawValue)>\n" + body
        guard let attempt = state.attempt else { return framed }
        return "<retry \(attempt.failedProgram.hashValue) \(attempt.feedback.hashValue)>\n" + framed
    }

    static func trimmed(_ lines: [String]) -> String {
        var out: [Substring] = []
        for line in lines {
            let trimmed = line.reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed()
            let s = Substring(String(trimmed))
            if s.isEmpty, out.last?.isEmpty == true { continue }
            out.append(s)
        }
        return out.joined(separator: "\n")
    }

    /// The program without comments, trailing space and blank lines.
    static func codeOnly(_ program: String) -> String {
        var bytes = Array(program.utf8)
        for t in PythonTokenizer(bytes).reversed() where t.kind == .comment {
            bytes.removeSubrange(t.start..<t.end)
        }
        let text = String(decoding: bytes, as: UTF8.self)
        return text.split(separator: "\n").compactMap { line -> Substring? in
            let t = line.reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed()
            return t.isEmpty ? nil : Substring(String(t))
        }.joined(separator: "\n")
    }

    public func verify(_ state: CodeState) async throws -> Verification {
        guard let job = task.verificationJob(state.program) else { return unverified(state) }
        let report = try await verifier.run(job)
        memo.store(report, for: state.program)
        return report.verification(expected: task.expectedChecks)
    }

    /// Without tests, a finished program that parses and adds code is as good as the search
    /// can tell: it ends the search (the best by process reward and policy), and the
    /// solver reports it as unverified, never as passing.
    func unverified(_ state: CodeState) -> Verification {
        let wrote = !task.written(state.program).allSatisfy(\.isWhitespace)
        let ok = wrote && state.facts.verdict == .valid
        return Verification(passed: ok ? 1 : 0, total: 1, outcome: ok ? "unverified" : wrote ? "syntax error" : "no code")
    }

    /// The jail's report for a program this search verified.
    public func report(for program: String) -> TestReport? { memo.report(for: program) }

    /// The program's outputs on probe inputs varied from the visible tests' call.
    public func behaviour(of state: CodeState) async throws -> Behaviour? {
        guard state.finished, let file = probes.file else { return nil }
        let report = try await verifier.run(JailJob(program: state.program, tests: file, setup: task.setup))
        return Behaviour(fingerprint: probes.fingerprint(report), cost: Cost(verifierRuns: 1, verifierSeconds: report.wallMs / 1000))
    }

    public func revision(of failed: CodeState, after verification: Verification) -> CodeState? {
        guard failed.finished, prompts.style == .chatml else { return nil }
        let attempt = Attempt(failedProgram: failed.program, feedback: feedback(on: failed.program, verification))
        return CodeState(program: root.program, finished: false, parsed: root.parsed, facts: root.facts, attempt: attempt,
                         framing: failed.framing)
    }

    /// What went wrong, in words a programmer would give: the failing visible
    /// test with its expected and actual values, the exception, or the limit hit.
    func feedback(on program: String, _ verification: Verification) -> String {
        guard let report = report(for: program) else { return "The code does not pass the test." }
        if let syntax = report.syntaxError { return "The code does not compile: \(syntax)." }
        if report.outcome == .timeout { return "The code did not finish in time on the test (an endless loop?)." }
        if let failing = report.asserts.first(where: { !$0.passed }) {
            let why = [failing.exceptionType, failing.message].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
            return "The code fails this test:\n\(failing.source)\n\(why)".trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return "The code does not pass the test (\(report.outcome.rawValue))."
    }

    public func describe(_ action: CodeAction) -> String {
        switch (action.line, action.ends) {
        case (let line?, false): return action.chunk ? line.debugDescription : line
        case (let line?, true): return (action.chunk ? line.debugDescription : line) + "  ⏎ end"
        case (nil, _): return "⏎ end"
        }
    }
}

extension TestReport {
    /// The one mapping from a jail report to the search's verdict: a pass
    /// counts every expected test even when the report lists fewer.
    public func verification(expected tests: Int) -> Verification {
        let total = Swift.max(self.total, tests)
        let passed = outcome == .passed ? total : self.passed
        return Verification(passed: passed, total: total, outcome: syntaxError != nil ? "syntax error" : outcome.rawValue,
                            cost: Cost(verifierRuns: 1, verifierSeconds: wallMs / 1000),
                            credit: credit(passed: passed, total: total))
    }

    /// A graded outcome: a program that returns wrong values is closer to right
    /// than one that raises, which is closer than one that hangs or does not compile.
    func credit(passed: Int, total: Int) -> Double {
        if outcome == .passed { return 1 }
        if syntaxError != nil { return 0 }
        let fraction = total > 0 ? Double(passed) / Double(total) : 0
        switch outcome {
        case .failed:
            let wrongValue = asserts.contains { !$0.passed && $0.exceptionType == "AssertionError" }
            return (wrongValue ? 0.3 : 0.15) + 0.5 * fraction
        case .timeout, .crashed, .error:
            return 0.05 + 0.5 * fraction
        case .passed:
            return 1
        }
    }
}
