import ArgumentParser
import Basics
import CodeDomain
import Foundation
import Policy

/// A debugging aid for the policy: the K candidate first lines of a program.
struct Sample: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the policy's K candidate next lines for a task, with log-probs and accounting.")

    @Option(help: "A file whose text is the task description.")
    var promptFile: String

    @Option(name: .customShort("k"), help: "Candidates to sample.")
    var k: Int = 4

    @Option(help: "Sampling temperature.")
    var temperature: Double = 0.8

    @Option(help: "Seed for reproducible samples.")
    var seed: UInt64 = 0

    @Option(help: "Code already written (a file), to sample the line after it.")
    var code: String?

    @Option(help: "Expansions to make in a row: each appends the previous call's first candidate line, as a search would, so the later calls show the prefix cache at work.")
    var repeats: Int = 1

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var llm: LLMOptions

    func run() async throws {
        let text: String
        do { text = try String(contentsOfFile: promptFile, encoding: .utf8) } catch {
            throw UserError("cannot read --prompt-file \(promptFile): \(error.localizedDescription)")
        }
        let lines = try code.map { try String(contentsOfFile: $0, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init) } ?? []
        let task = CodeTask(id: "sample", text: text.trimmingCharacters(in: .whitespacesAndNewlines), tests: [])
        let engine = try Engine.make(llm)
        var code = lines.last == "" ? Array(lines.dropLast()) : lines
        var calls: [[String: Any]] = []
        var last: CompletionResponse?
        try await engine.run {
            for i in 0..<max(1, repeats) {
                let response = try await engine.model.complete(CompletionRequest(
                    prompt: PromptBuilder().prompt(for: task, lines: code), n: k, maxTokens: 80, stop: ["\n"], sampling: Sampling(temperature: temperature),
                    seed: seed &+ UInt64(i), slot: 0))
                last = response
                calls.append(Self.costJSON(response.cost))
                // Follow the first real line; stop where the model closes the program.
                guard let next = response.choices.first(where: { !$0.text.trimmingCharacters(in: .whitespaces).isEmpty }),
                      next.finish == .stop, !PromptBuilder().isEndMarker(next.text) else { break }
                code.append(next.text)
            }
        }
        guard let response = last else { return }
        if json {
            let object: [String: Any] = [
                "candidates": response.choices.map { ["text": $0.text, "logprob": $0.logprobSum, "logprob_mean": $0.logprobMean,
                                                      "tokens": $0.tokens, "finish": $0.finish.rawValue] },
                "usage": calls.last!, "calls": calls,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for c in response.choices {
                print(String(format: "%8.3f  %7.3f/tok  %2d tok  %@  %@", c.logprobSum, c.logprobMean, c.tokens,
                             c.finish.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0), c.text.debugDescription))
            }
            let evaluated = calls.reduce(0) { $0 + ($1["prompt_tokens"] as! Int) }
            let cached = calls.reduce(0) { $0 + ($1["cached_prompt_tokens"] as! Int) }
            for (i, call) in calls.enumerated() {
                print("# call \(i + 1): prompt \(call["prompt_tokens"]!) evaluated + \(call["cached_prompt_tokens"]!) cached, "
                      + "\(call["generated_tokens"]!) generated, \(call["wall_ms"]!) ms")
            }
            if calls.count > 1 {
                print(String(format: "# prompt tokens served from cache over %d calls: %.1f%%", calls.count,
                             100 * Double(cached) / Double(max(1, cached + evaluated))))
            }
        }
    }

    static func costJSON(_ c: Cost) -> [String: Any] {
        ["prompt_tokens": c.promptTokens, "cached_prompt_tokens": c.cachedPromptTokens,
         "generated_tokens": c.generatedTokens, "wall_ms": Int((c.llmSeconds * 1000).rounded())]
    }
}
