import PythonSyntax

/// R_P(s) per syntax verdict. Q*'s g(s) sums these along a path, so `broken`
/// must cost something and the other two should not: an unfinished prefix is
/// the normal state of every node but the last.
public struct ProcessRewardValues: Sendable, Codable, Hashable {
    public var valid: Double = 0
    public var incomplete: Double = 0
    public var broken: Double = -1

    public init(valid: Double = 0, incomplete: Double = 0, broken: Double = -1) {
        self.valid = valid
        self.incomplete = incomplete
        self.broken = broken
    }
}

/// The function a task's visible test calls, so the search can tell early
/// whether the program defines what will be tested.
public struct EntryPoint: Sendable, Hashable {
    public var name: String
    /// Arguments in the test's call (positional and keyword).
    public var arity: Int

    public init(name: String, arity: Int) {
        self.name = name
        self.arity = arity
    }
}

/// Callees that wrap the tested call in MBPP-style asserts
/// (`assert set(f(x)) == ...`, `assert math.isclose(f(x), ...)`): skipped so
/// the entry point is the user function inside them.
private let wrappers: Set<String> = [
    "set", "sorted", "list", "tuple", "dict", "frozenset", "len", "abs", "round", "str", "int", "float",
    "bool", "sum", "min", "max", "any", "all", "isinstance", "type", "repr", "print", "map", "filter", "zip",
    "enumerate", "range", "reversed", "iter", "next",
]
private let keywords: Set<String> = [
    "assert", "and", "or", "not", "in", "is", "if", "else", "lambda", "None", "True", "False", "for", "return",
]

/// The first call to a non-builtin function in a test such as
/// `assert f(1, 2) == 3`, with its argument count. A careful scan rather than
/// a parse: tests are one line, and the scan skips strings, attribute calls
/// (`math.isclose`) and builtin wrappers. Nil when the test calls nothing else.
public func entryPoint(fromTest test: String) -> EntryPoint? {
    let b = Array(test.utf8)
    var i = 0
    var previous: UInt8 = 0  // last significant byte before the current token
    func isStart(_ c: UInt8) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A || c == 0x5F || c >= 0x80 }
    func isChar(_ c: UInt8) -> Bool { isStart(c) || (c >= 0x30 && c <= 0x39) }
    while i < b.count {
        let c = b[i]
        if c == 0x22 || c == 0x27 {
            i = skipString(b, i)
            previous = c
        } else if c == 0x23 {
            break
        } else if isStart(c) {
            var j = i + 1
            while j < b.count, isChar(b[j]) { j += 1 }
            let name = String(decoding: b[i..<j], as: UTF8.self)
            var k = j
            while k < b.count, b[k] == 0x20 || b[k] == 0x09 { k += 1 }
            // A string prefix like r'...' is not a name.
            if k == j, k < b.count, b[k] == 0x22 || b[k] == 0x27, name.count <= 2 {
                i = skipString(b, k)
                previous = 0x22
                continue
            }
            if k < b.count, b[k] == 0x28, previous != 0x2E, !wrappers.contains(name), !keywords.contains(name) {
                return EntryPoint(name: name, arity: countArguments(b, open: k))
            }
            previous = b[j - 1]
            i = j
        } else {
            if c != 0x20 && c != 0x09 { previous = c }
            i += 1
        }
    }
    return nil
}

private func skipString(_ b: [UInt8], _ start: Int) -> Int {
    let q = b[start]
    let triple = start + 2 < b.count && b[start + 1] == q && b[start + 2] == q
    var i = start + (triple ? 3 : 1)
    while i < b.count {
        if b[i] == 0x5C { i += 2; continue }
        if b[i] == q {
            if !triple { return i + 1 }
            if i + 2 < b.count, b[i + 1] == q, b[i + 2] == q { return i + 3 }
        }
        i += 1
    }
    return b.count
}

/// Top-level arguments between the bracket at `open` and its closer.
private func countArguments(_ b: [UInt8], open: Int) -> Int {
    var depth = 0, commas = 0, sawContent = false, lastSignificant: UInt8 = 0
    var i = open
    while i < b.count {
        let c = b[i]
        switch c {
        case 0x22, 0x27:
            i = skipString(b, i)
            if depth == 1 { sawContent = true }
            lastSignificant = c
            continue
        case 0x28, 0x5B, 0x7B:
            depth += 1
            if depth > 1 { sawContent = true }
        case 0x29, 0x5D, 0x7D:
            depth -= 1
            if depth == 0 {
                // `f(a, b,)`: a trailing comma adds no argument.
                let trailing = lastSignificant == 0x2C ? 1 : 0
                return sawContent ? commas + 1 - trailing : 0
            }
        case 0x2C:
            if depth == 1 { commas += 1 }
        case 0x20, 0x09:
            i += 1
            continue
        default:
            if depth == 1 { sawContent = true }
        }
        lastSignificant = c
        i += 1
    }
    return sawContent ? commas + 1 : 0
}

/// Cheap structural facts about a search state. A pure function of the
/// parsed program (and the task's entry point), so equal states get equal
/// facts and the search may cache them.
public struct CodeFacts: Sendable, Hashable {
    public var verdict: SyntaxVerdict
    /// A top-level `def` with the entry point's name exists.
    public var definesEntryPoint: Bool
    /// That `def` accepts the test's number of arguments.
    public var entryPointArityMatches: Bool
    /// Open block depth at the end of the program.
    public var indentDepth: Int
    public var lineCount: Int

    public init(verdict: SyntaxVerdict, definesEntryPoint: Bool, entryPointArityMatches: Bool, indentDepth: Int, lineCount: Int) {
        self.verdict = verdict
        self.definesEntryPoint = definesEntryPoint
        self.entryPointArityMatches = entryPointArityMatches
        self.indentDepth = indentDepth
        self.lineCount = lineCount
    }
}

public func codeFacts(_ program: ParsedProgram, entryPoint: EntryPoint?) -> CodeFacts {
    let report = program.report
    let candidates = entryPoint.map { ep in report.functions.filter { $0.name == ep.name } } ?? []
    // Python binds the last definition of a name, so that one is what the test calls.
    let arityMatches = entryPoint.map { ep in candidates.last?.accepts(arity: ep.arity) ?? false } ?? false
    return CodeFacts(verdict: report.verdict, definesEntryPoint: !candidates.isEmpty, entryPointArityMatches: arityMatches,
                     indentDepth: report.indentDepth, lineCount: report.lineCount)
}

/// R_P(s): the configured value for the verdict.
public func processReward(_ facts: CodeFacts, values: ProcessRewardValues) -> Double {
    switch facts.verdict {
    case .valid: return values.valid
    case .incomplete: return values.incomplete
    case .broken: return values.broken
    }
}
