import Basics
import Foundation
import QStar

/// A solve option that is missing, mistyped, unknown or out of range. `field`
/// is the name on the wire (`budget_tokens`), so the CLI can map it to its
/// flag and the daemon can name it in a -32602 answer.
public struct OptionError: Error, Sendable, Hashable, CustomStringConvertible {
    public var field: String
    public var message: String
    public init(_ field: String, _ message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { "\(field): \(message)" }
}

/// Which value model h uses: `zero`, `logprob`, `qvm` (the model shipped with
/// qcode) or `qvm:PATH` (a file from `qcode train-qvm`).
public struct ValueChoice: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        case zero, logprob, qvm
    }
    public var kind: Kind
    /// A trained model file, for `qvm:PATH`.
    public var path: String?

    public init(_ kind: Kind, path: String? = nil) {
        self.kind = kind
        self.path = path
    }

    public init(parsing text: String) throws(OptionError) {
        if text.hasPrefix("qvm:") {
            let path = String(text.dropFirst(4))
            guard !path.isEmpty else { throw OptionError("value", "qvm: needs a model file after the colon (qvm:PATH)") }
            self.init(.qvm, path: path)
        } else if let kind = Kind(rawValue: text) {
            self.init(kind)
        } else {
            throw OptionError("value", "must be \(Self.spellings), not '\(text)'")
        }
    }

    /// How a user may write it, derived from the cases.
    public static var spellings: String { (Kind.allCases.map(\.rawValue) + ["qvm:PATH"]).joined(separator: ", ") }

    public var description: String { path.map { "\(kind.rawValue):\($0)" } ?? kind.rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

extension Framing {
    /// How a user may write one, derived from the cases.
    public static var spellings: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// A comma-separated list as a flag gives it (`instruct,examples`).
    public static func list(parsing text: String) throws(OptionError) -> [Framing] {
        var list: [Framing] = []
        for name in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            guard let framing = Framing(rawValue: trimmed) else {
                throw OptionError("framings", "takes \(spellings), not '\(trimmed)'")
            }
            list.append(framing)
        }
        return list
    }
}

/// What one step of a search is.
public enum StepShape: String, Sendable, Hashable, Codable, CaseIterable {
    /// One physical line.
    case lines
    /// A logical line of code with the comments and blank lines before it, so
    /// siblings differ in code, not in the wording of a comment.
    case code
}

/// Everything that shapes one solve, and the wire type of `qcode/solve`'s
/// `options`. Defaults live here (and in `SearchSettings` for the planner's
/// knobs) and nowhere else; the CLI's flags, the daemon and the benchmark all
/// build this one value and call the one `validate()`.
public struct SolveOptions: Sendable, Hashable {
    /// A planner registered in `Planners` (`qstar`, `greedy`, `best-of-n`).
    public var method = "qstar"
    public var value = ValueChoice(.logprob)
    public var search = SearchSettings()
    /// What a step is when episodes are split (K-step proposals are single lines).
    public var steps = StepShape.code
    /// nil: a step is one line. N: a step is N tokens, whatever lines they span.
    public var stepTokens: Int?
    /// Tokens one line may take before it is cut.
    public var maxLineTokens = 80
    /// Tokens one whole program may take (samples, rollouts).
    public var maxProgramTokens = 512
    /// Seconds a program may run in the jail.
    public var timeout = 10.0
    /// How the task is put to the policy. Every method starts from the first;
    /// Q* (with continuations) opens a fresh attempt under each of the others,
    /// best-of-N takes its calls from them in turn, and greedy, MCTSr and
    /// K-step Q* use the first alone. Both by default: on MBPP validation the
    /// mixture solved 4 points more than the task's own prompt alone with the
    /// 0.5B, for best-of-N and for Q* (with root branching), and Q* gained on
    /// the 1.5B too (BENCHMARKS.md); greedy's answer is unchanged.
    public var framings: [Framing] = [.instruct, .examples]

    public init() {}
    public static let defaults = SolveOptions()

    /// The planner `method` names; `validate()` guarantees there is one.
    public var planner: any SearchAlgorithm { Planners.named(method) ?? AStarSearch() }

    /// Checks every field against its range. The CLI and the daemon both call
    /// this, so a value is refused with the same words wherever it came from.
    public func validate() throws(OptionError) {
        guard Planners.named(method) != nil else {
            throw OptionError("method", "must be one of \(Planners.names.joined(separator: ", ")), not '\(method)'")
        }
        let s = search
        guard s.k >= 1, s.k <= 64 else { throw OptionError("k", "must be between 1 and 64") }
        guard s.lambda.isFinite else { throw OptionError("lambda", "must be a finite number") }
        guard s.budget.maxGeneratedTokens.map({ $0 > 0 }) ?? true else { throw OptionError("budget_tokens", "must be positive") }
        guard s.budget.maxExpansions.map({ $0 > 0 }) ?? true else { throw OptionError("budget_expansions", "must be positive") }
        guard s.budget.maxSeconds.map({ $0 > 0 && $0.isFinite }) ?? true else {
            throw OptionError("budget_seconds", "must be a positive number of seconds")
        }
        guard s.budget.maxGeneratedTokens != nil || s.budget.maxExpansions != nil || s.budget.maxSeconds != nil else {
            throw OptionError("budget_tokens", "a search needs a budget: give budget_tokens, budget_expansions or budget_seconds")
        }
        guard s.samples >= 1 else { throw OptionError("samples", "must be at least 1") }
        guard s.temperature >= 0, s.temperature <= 5 else { throw OptionError("temperature", "must be between 0 and 5") }
        guard s.maxDepth >= 1 else { throw OptionError("max_depth", "must be at least 1") }
        guard s.branchSamples >= 1, s.branchSamples <= 16 else { throw OptionError("branch_samples", "must be between 1 and 16") }
        guard s.uncertainty >= 0, s.uncertainty.isFinite else { throw OptionError("uncertainty", "must be a number ≥ 0") }
        guard (0...1).contains(s.rolloutWeight) else { throw OptionError("rollout_weight", "must be between 0 and 1") }
        guard s.revise >= 0, s.revise.isFinite else { throw OptionError("revise", "must be a number ≥ 0") }
        guard s.costWeight >= 0, s.costWeight.isFinite else { throw OptionError("cost_weight", "must be a number ≥ 0") }
        guard s.select >= 1, s.select <= 16 else { throw OptionError("select", "must be between 1 and 16") }
        if s.select > 1, !(method == "best-of-n" || method == "qstar") {
            throw OptionError("select", "above 1 is used by best-of-n and qstar only: give select = 1")
        }
        guard (0...16).contains(s.rewardSamples) else { throw OptionError("reward_samples", "must be between 0 and 16") }
        guard s.exploration >= 0, s.exploration.isFinite else { throw OptionError("exploration", "must be a number ≥ 0") }
        guard (1...16).contains(s.maxChildren) else { throw OptionError("max_children", "must be between 1 and 16") }
        guard stepTokens.map({ $0 >= 1 }) ?? true else { throw OptionError("step_tokens", "must be at least 1") }
        if stepTokens != nil, s.continuations, method == "qstar" {
            throw OptionError("step_tokens", "shapes K-step expansions only: add continuations = false (--continuations false)")
        }
        guard maxLineTokens >= 1 else { throw OptionError("max_line_tokens", "must be at least 1") }
        guard maxProgramTokens >= 1 else { throw OptionError("max_program_tokens", "must be at least 1") }
        guard timeout > 0, timeout <= 3600 else { throw OptionError("timeout", "must be between 0 and 3600 seconds") }
        guard !framings.isEmpty, Set(framings).count == framings.count else {
            throw OptionError("framings", "must name each of \(Framing.spellings) at most once, and at least one")
        }
        if let path = value.path, !FileManager.default.isReadableFile(atPath: path) {
            throw OptionError("value", "no readable QVM model file at \(path): train one with `qcode train-qvm`")
        }
    }
}

extension SolveOptions: Codable {
    /// The fields on the wire, flat, as users write them (snake_case on the
    /// wire: the coders convert). The CLI has one flag per field.
    public enum Field: String, CodingKey, CaseIterable, Sendable {
        case method, value, k, lambda, agg, budgetTokens, budgetExpansions, budgetSeconds, seed, samples, temperature
        case maxDepth, continuations, greedyFirst, branchSamples, uncertainty, rolloutWeight, costWeight, branching, revise, dedup
        case select, rewardSamples, exploration, maxChildren, placeholderRoot, steps
        case stepTokens, maxLineTokens, maxProgramTokens, timeout, framings

        /// The name on the wire and in error messages.
        public var wireName: String { JSONCoding.snakeCase(rawValue) }
    }

    /// Starts from the defaults and overrides what is present; an unknown key
    /// is an error naming it, so a misspelt option is never silently ignored.
    public init(from decoder: any Decoder) throws {
        self.init()
        try StrictDecoding.rejectUnknownKeys(decoder, Field.self)
        let c = try decoder.container(keyedBy: Field.self)
        func read<T: Decodable>(_ field: Field, _ apply: (T) -> Void) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: field) { apply(v) }
        }
        /// Optional fields: `null` clears them.
        func readOptional<T: Decodable>(_ field: Field, _ apply: (T?) -> Void) throws {
            guard c.contains(field) else { return }
            apply(try c.decodeNil(forKey: field) ? nil : try c.decode(T.self, forKey: field))
        }
        try read(.method) { (v: String) in method = v }
        try read(.value) { (v: ValueChoice) in value = v }
        try read(.k) { (v: Int) in search.k = v }
        try read(.lambda) { (v: Double) in search.lambda = v }
        try read(.agg) { (v: Aggregation) in search.aggregation = v }
        try readOptional(.budgetTokens) { (v: Int?) in search.budget.maxGeneratedTokens = v }
        try readOptional(.budgetExpansions) { (v: Int?) in search.budget.maxExpansions = v }
        try readOptional(.budgetSeconds) { (v: Double?) in search.budget.maxSeconds = v }
        try read(.seed) { (v: UInt64) in search.seed = v }
        try read(.samples) { (v: Int) in search.samples = v }
        try read(.temperature) { (v: Double) in search.temperature = v }
        try read(.maxDepth) { (v: Int) in search.maxDepth = v }
        try read(.continuations) { (v: Bool) in search.continuations = v }
        try read(.greedyFirst) { (v: Bool) in search.greedyFirst = v }
        try read(.branchSamples) { (v: Int) in search.branchSamples = v }
        try read(.uncertainty) { (v: Double) in search.uncertainty = v }
        try read(.rolloutWeight) { (v: Double) in search.rolloutWeight = v }
        try read(.costWeight) { (v: Double) in search.costWeight = v }
        try read(.branching) { (v: Branching) in search.branching = v }
        try read(.revise) { (v: Double) in search.revise = v }
        try read(.dedup) { (v: Bool) in search.dedup = v }
        try read(.select) { (v: Int) in search.select = v }
        try read(.rewardSamples) { (v: Int) in search.rewardSamples = v }
        try read(.exploration) { (v: Double) in search.exploration = v }
        try read(.maxChildren) { (v: Int) in search.maxChildren = v }
        try read(.placeholderRoot) { (v: Bool) in search.placeholderRoot = v }
        try read(.steps) { (v: StepShape) in steps = v }
        try readOptional(.stepTokens) { (v: Int?) in stepTokens = v }
        try read(.maxLineTokens) { (v: Int) in maxLineTokens = v }
        try read(.maxProgramTokens) { (v: Int) in maxProgramTokens = v }
        try read(.timeout) { (v: Double) in timeout = v }
        try read(.framings) { (v: [Framing]) in framings = v }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Field.self)
        try c.encode(method, forKey: .method)
        try c.encode(value, forKey: .value)
        try c.encode(search.k, forKey: .k)
        try c.encode(search.lambda, forKey: .lambda)
        try c.encode(search.aggregation, forKey: .agg)
        try c.encode(search.budget.maxGeneratedTokens, forKey: .budgetTokens)
        try c.encode(search.budget.maxExpansions, forKey: .budgetExpansions)
        try c.encode(search.budget.maxSeconds, forKey: .budgetSeconds)
        try c.encode(search.seed, forKey: .seed)
        try c.encode(search.samples, forKey: .samples)
        try c.encode(search.temperature, forKey: .temperature)
        try c.encode(search.maxDepth, forKey: .maxDepth)
        try c.encode(search.continuations, forKey: .continuations)
        try c.encode(search.greedyFirst, forKey: .greedyFirst)
        try c.encode(search.branchSamples, forKey: .branchSamples)
        try c.encode(search.uncertainty, forKey: .uncertainty)
        try c.encode(search.rolloutWeight, forKey: .rolloutWeight)
        try c.encode(search.costWeight, forKey: .costWeight)
        try c.encode(search.branching, forKey: .branching)
        try c.encode(search.revise, forKey: .revise)
        try c.encode(search.dedup, forKey: .dedup)
        try c.encode(search.select, forKey: .select)
        try c.encode(search.rewardSamples, forKey: .rewardSamples)
        try c.encode(search.exploration, forKey: .exploration)
        try c.encode(search.maxChildren, forKey: .maxChildren)
        try c.encode(search.placeholderRoot, forKey: .placeholderRoot)
        try c.encode(steps, forKey: .steps)
        try c.encode(stepTokens, forKey: .stepTokens)
        try c.encode(maxLineTokens, forKey: .maxLineTokens)
        try c.encode(maxProgramTokens, forKey: .maxProgramTokens)
        try c.encode(timeout, forKey: .timeout)
        try c.encode(framings, forKey: .framings)
    }
}
