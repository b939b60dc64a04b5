import CodeDomain
import Foundation
import PythonSyntax
import QStar

/// A sparse feature vector: (index, value) pairs; repeated indices add up.
public struct SparseFeatures: Sendable, Hashable {
    public var indices: [Int32] = []
    public var values: [Float] = []
    public init() {
        indices.reserveCapacity(96)
        values.reserveCapacity(96)
    }
    mutating func add(_ i: Int, _ v: Float = 1) {
        indices.append(Int32(truncatingIfNeeded: i))
        values.append(v)
    }
}

/// What the extractor needs of the parent state. Built from a live
/// `CodeState` in the search and from a re-parsed prefix in training, so both
/// paths feed the model the same facts.
public struct ParentView: Sendable {
    public var lines: [String]
    public var facts: CodeFacts
    /// Log-probability of the path to the parent (the search's `PathStats`).
    public var path: PathStats
    public init(lines: [String], facts: CodeFacts, path: PathStats) {
        self.lines = lines
        self.facts = facts
        self.path = path
    }
}

/// The candidate action and what the policy said about it. `logprob` is nil
/// for the end-of-program action: rollouts never score the end marker, so the
/// model must not learn from a number it will only see at search time.
public struct CandidateView: Sendable {
    public var line: String?
    public var ends: Bool
    public var logprob: (sum: Double, tokens: Int)?
    public init(line: String?, ends: Bool, logprob: (sum: Double, tokens: Int)?) {
        self.line = line
        self.ends = ends
        self.logprob = logprob
    }
}

/// Per-task context, computed once per task so a candidate costs only its own line.
public struct FeatureContext: Sendable {
    public let entryPoint: EntryPoint?
    /// Identifiers in the visible tests other than the entry point (e.g. helper names, keyword args).
    let testIdentifiers: Set<Substring>
    /// Literal numbers and strings in the visible tests: a line that repeats them is often hard-coding.
    let testLiterals: Set<Substring>
    /// Lower-cased words of the task text.
    let taskWords: Set<String>

    public init(task: CodeTask) {
        entryPoint = task.entry
        var ids = Set<Substring>(), lits = Set<Substring>()
        for test in task.tests {
            for t in lex(test) {
                switch t.kind {
                case .name where !pythonKeywords.contains(t.text) && t.text != "assert": ids.insert(Substring(String(t.text)))
                case .number, .string: lits.insert(Substring(String(t.text)))
                default: break
                }
            }
        }
        if let name = entryPoint?.name { ids.remove(Substring(name)) }
        testIdentifiers = ids
        testLiterals = lits
        var words = Set<String>()
        for t in lex(task.text) where t.kind == .name && t.text.count >= 3 { words.insert(t.text.lowercased()) }
        taskWords = words.subtracting(stopWords)
    }
}

/// Hashed features of (task, code so far, candidate line). Hashing is FNV-1a
/// (not Swift's seeded `Hasher`) so a model file means the same thing in every process.
public struct FeatureExtractor: Sendable {
    /// 2: tokens from PythonSyntax's tokenizer (multi-character operators whole, prefixed strings).
    public static let version = 2
    public let hashBits: Int
    /// Indices below this are dense numeric features; hashed features land above.
    public static let denseSlots = 32
    /// The dense slot holding the logit of the logprob heuristic (see `QValueModel.init`).
    public static let priorSlot = 11

    public init(hashBits: Int = 14) { self.hashBits = hashBits }

    public var dimension: Int { 1 << hashBits }

    public func features(_ ctx: FeatureContext, parent: ParentView, candidate: CandidateView) -> SparseFeatures {
        var f = SparseFeatures()
        let mask = UInt64(dimension - Self.denseSlots - 1)
        func h(_ ns: StaticString, _ s: Substring) {
            var x: UInt64 = 0xcbf2_9ce4_8422_2325
            ns.withUTF8Buffer { for b in $0 { x = (x ^ UInt64(b)) &* 0x100_0000_01b3 } }
            x = (x ^ 0x1F) &* 0x100_0000_01b3
            for b in s.utf8 { x = (x ^ UInt64(b)) &* 0x100_0000_01b3 }
            x ^= x >> 29
            f.add(Self.denseSlots + Int(x % (mask + 1)))
        }
        func h(_ ns: StaticString, _ s: String) { h(ns, Substring(s)) }
        /// `h(ns, "\(a) \(b)")` without building the string (same hash).
        func h2(_ ns: StaticString, _ a: Substring, _ b: Substring) {
            var x: UInt64 = 0xcbf2_9ce4_8422_2325
            ns.withUTF8Buffer { for c in $0 { x = (x ^ UInt64(c)) &* 0x100_0000_01b3 } }
            x = (x ^ 0x1F) &* 0x100_0000_01b3
            for c in a.utf8 { x = (x ^ UInt64(c)) &* 0x100_0000_01b3 }
            x = (x ^ 0x20) &* 0x100_0000_01b3
            for c in b.utf8 { x = (x ^ UInt64(c)) &* 0x100_0000_01b3 }
            x ^= x >> 29
            f.add(Self.denseSlots + Int(x % (mask + 1)))
        }
        func h(_ ns: StaticString, _ i: Int) { h(ns, Substring(String(i))) }

        let depth = parent.lines.count
        let depthBucket = min(depth, 12)
        let facts = parent.facts
        let lastLine = parent.lines.last(where: { !isBlank($0) })
        let lastIndent = lastLine.map(indentWidth) ?? 0
        let lastOpens = lastLine.map { trim($0).hasSuffix(":") } ?? false

        // Dense: bias-like and numeric features, each scaled to about [-1, 1].
        f.add(0, 1)
        f.add(1, Float(min(depth, 30)) / 30)
        f.add(2, candidate.ends ? 1 : 0)
        let pathMean = parent.path.logprobMean
        f.add(3, Float(max(pathMean, -5)) / 5)
        f.add(4, Float(parent.path.tokens == 0 ? 1 : exp(pathMean)))
        // The prior: the logit of the `logprob` heuristic's own score, so a model
        // with weight 1 here and nothing else *is* that heuristic; training learns a correction.
        var prior = parent.path
        if let lp = candidate.logprob, lp.tokens > 0 {
            prior.logprobSum += lp.sum
            prior.tokens += lp.tokens
        }
        let p = prior.tokens == 0 ? 0.95 : min(max(exp(prior.logprobMean), 0.02), 0.98)
        f.add(Self.priorSlot, Float(log(p / (1 - p))))
        h("verdict", facts.verdict.rawValue)
        h("defEP", facts.definesEntryPoint ? (facts.entryPointArityMatches ? "match" : "mismatch") : "no")
        h("indentDepth", min(facts.indentDepth, 4))
        h("depth", depthBucket)

        guard let raw = candidate.line, !candidate.ends || !isBlank(raw) else {
            // The end action: is the program complete enough to stop here?
            h("end.verdict", facts.verdict.rawValue)
            h("end.defEP", facts.definesEntryPoint ? (facts.entryPointArityMatches ? "match" : "mismatch") : "no")
            h("end.depth", depthBucket)
            h("end.lastOpens", lastOpens ? "1" : "0")
            h("end.indent", min(facts.indentDepth, 3))
            if let lastLine { h("end.last", firstWord(lastLine)) }
            return f
        }
        if candidate.ends { h("lineEnds", "1") }

        // Log-probability of the line, as numbers and as buckets (the model is linear).
        if let lp = candidate.logprob, lp.tokens > 0 {
            let mean = lp.sum / Double(lp.tokens)
            f.add(5, Float(max(mean, -5)) / 5)
            f.add(6, Float(exp(mean)))
            let extended = (parent.path.logprobSum + lp.sum) / Double(parent.path.tokens + lp.tokens)
            f.add(7, Float(max(extended, -5)) / 5)
            f.add(8, Float(exp(extended)))
            f.add(9, Float(max(lp.sum, -20)) / 20)
            h("lpMean", Int((min(-mean, 3.99) * 4).rounded(.down)))
            h("lpExt", Int((min(-extended, 1.99) * 10).rounded(.down)))
            h("lpMin.depth", "\(Int((min(-mean, 1.99) * 4).rounded(.down)))|\(min(depth, 4))")
        } else {
            h("lpUnknown", "1")
        }

        let line = Substring(raw)
        let indent = indentWidth(raw)
        let trimmed = String(trim(raw))
        let tokens = lex(trimmed)
        let rel = max(-3, min(2, (indent - lastIndent) / 4))
        h("indent", "\(rel)|\(lastOpens ? 1 : 0)")
        if lastOpens && indent <= lastIndent { h("badIndent", "1") }
        if !lastOpens && indent > lastIndent { h("badIndent", "2") }
        if trimmed.isEmpty { h("blank", "1") }
        h("len", min(trimmed.count / 10, 8))
        h("ntok", min(tokens.count / 3, 8))
        f.add(10, Float(min(tokens.count, 40)) / 40)
        var balance = 0, minBalance = 0
        for c in line {
            if c == "(" || c == "[" || c == "{" { balance += 1 } else if c == ")" || c == "]" || c == "}" {
                balance -= 1
                minBalance = min(minBalance, balance)
            }
        }
        h("brackets", "\(max(-2, min(2, balance)))|\(minBalance < 0 ? 1 : 0)")
        if trimmed.hasSuffix(":") { h("opens", firstWord(trimmed)) }
        if let lastLine { h("prevFirst", "\(firstWord(lastLine))|\(firstWord(trimmed))") }
        if parent.lines.contains(raw) && !trimmed.isEmpty { h("repeat", trimmed.count > 12 ? "long" : "short") }

        // The tokens themselves: unigrams, bigrams, first and last.
        var previous: Substring = "^"
        var mentionsEP = false, testIds = 0, testLits = 0, taskWords = 0
        for t in tokens {
            let norm: Substring
            switch t.kind {
            case .name:
                if let ep = ctx.entryPoint?.name, t.text == ep { norm = "<EP>"; mentionsEP = true } else if ctx.testIdentifiers.contains(t.text) {
                    norm = "<TID>"
                    testIds += 1
                } else {
                    if ctx.taskWords.contains(t.text.lowercased()) { taskWords += 1 }
                    norm = t.text
                }
            case .number:
                if ctx.testLiterals.contains(t.text) { testLits += 1 }
                norm = t.text.count <= 1 ? t.text : "<NUM>"
            case .string:
                if ctx.testLiterals.contains(t.text) { testLits += 1 }
                norm = "<STR>"
            default:
                norm = t.text
            }
            h("u", norm)
            h2("b", previous, norm)
            previous = norm
        }
        h2("b", previous, "$")
        h("first", tokens.first.map { $0.kind == .name ? $0.text : $0.kind.featureName } ?? "")
        h("first.depth", "\(tokens.first?.text ?? "")|\(min(depth, 3))")
        if mentionsEP { h("mentionsEP", trimmed.hasPrefix("def ") ? "def" : "use") }
        if testIds > 0 { h("testIds", min(testIds, 3)) }
        if testLits > 0 { h("testLits", min(testLits, 3)) }
        h("taskWords", min(taskWords, 3))

        // Does this line define the tested function, with the test's arity?
        if trimmed.hasPrefix("def "), tokens.count >= 2 {
            let name = tokens[1].text
            if let ep = ctx.entryPoint?.name, name == ep {
                let arity = defArity(tokens)
                if let wanted = ctx.entryPoint?.arity {
                    h("defLine", arity.map { $0 == wanted ? "ep.match" : "ep.mismatch" } ?? "ep.varargs")
                } else {
                    h("defLine", "ep")
                }
            } else {
                h("defLine", facts.definesEntryPoint ? "other.after" : "other.before")
            }
        }
        if trimmed.hasPrefix("assert") || trimmed.hasPrefix("print(") || trimmed.hasPrefix("if __name__")
            || trimmed.contains("input(") {
            h("driver", firstWord(trimmed))
        }
        return f
    }
}

// MARK: - Tokens, from the one Python tokenizer

typealias LexToken = (kind: PythonToken.Kind, text: Substring)

/// Names, numbers, strings and operators of a line (comments dropped).
func lex(_ s: String) -> [LexToken] { PythonTokenizer.codeTokens(s) }

extension PythonToken.Kind {
    /// A stable name for hashing (the model file depends on it).
    var featureName: Substring {
        switch self {
        case .name: return "name"
        case .number: return "number"
        case .string: return "string"
        default: return "op"
        }
    }
}

/// Spaces and tabs off both ends; Foundation's `trimmingCharacters` costs
/// microseconds per call on Linux, and a candidate needs several.
func trim(_ s: String) -> Substring {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
    guard let start = s.firstIndex(where: { !isSpace($0) }) else { return "" }
    let end = s.lastIndex(where: { !isSpace($0) })!
    return s[start...end]
}

func isBlank(_ s: String) -> Bool { s.utf8.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D } }

func indentWidth(_ line: String) -> Int {
    var n = 0
    for c in line.utf8 {
        if c == 0x20 { n += 1 } else if c == 0x09 { n += 4 } else { break }
    }
    return n
}

func firstWord(_ line: String) -> Substring {
    let t = line.drop(while: { $0 == " " || $0 == "\t" })
    let w = t.prefix(while: { $0.isLetter || $0 == "_" })
    return w.isEmpty ? t.prefix(1) : w
}

/// Parameters of a `def` line, or nil when it takes *args/**kwargs (any arity).
func defArity(_ tokens: [LexToken]) -> Int? {
    guard let open = tokens.firstIndex(where: { $0.text == "(" }) else { return 0 }
    var depth = 0, count = 0, content = false
    for t in tokens[open...] {
        switch t.text {
        case "(", "[", "{": depth += 1
        case ")", "]", "}":
            depth -= 1
            if depth == 0 { return content ? count + 1 : 0 }
        case ",": if depth == 1 { count += 1 }
        case "*", "**": if depth == 1 { return nil }
        case "=": break
        default: if depth == 1 { content = true }
        }
    }
    return content ? count + 1 : 0
}

let pythonKeywords: Set<Substring> = [
    "and", "or", "not", "in", "is", "if", "else", "elif", "for", "while", "return", "def", "lambda", "None", "True",
    "False", "import", "from", "as", "with", "try", "except", "finally", "pass", "break", "continue", "class", "yield",
    "set", "sorted", "list", "tuple", "dict", "len", "abs", "round", "str", "int", "float", "sum", "min", "max",
    "math", "isclose",
]
let stopWords: Set<String> = [
    "write", "function", "the", "and", "for", "given", "python", "from", "with", "that", "find", "which", "are", "all",
    "into", "using", "whether", "check", "list", "number", "numbers", "string", "strings", "elements", "element",
]
