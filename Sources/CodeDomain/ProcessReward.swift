import PythonSyntax

/// R_P values per verdict. Unfinished-but-fine costs nothing: pruning it would
/// cut every program before its last line.
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

/// The function the visible test calls, with how many arguments.
public struct EntryPoint: Sendable, Hashable {
    public var name: String
    public var arity: Int
    public init(name: String, arity: Int) {
        self.name = name
        self.arity = arity
    }
}

/// Reads `assert f(1, [2, 3]) == 4` as f with 2 arguments.
public func entryPoint(fromTest test: String) -> EntryPoint? {
    guard let name = TestFile.calledFunction(test),
          let open = test.range(of: name + "(")?.upperBound else { return nil }
    var depth = 0, args = 0, sawToken = false
    var quote: Character?, escaped = false
    for c in test[open...] {
        if let q = quote {
            if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == q { quote = nil }
            continue
        }
        switch c {
        case "'", "\"": quote = c; sawToken = true
        case "(", "[", "{": depth += 1; sawToken = true
        case ")", "]", "}":
            if depth == 0 { return EntryPoint(name: name, arity: sawToken ? args + 1 : 0) }
            depth -= 1
        case "," where depth == 0: args += 1
        case " ", "\t", "\n": break
        default: sawToken = true
        }
    }
    return nil
}

/// Cheap structural facts of a partial program the search and the QVM use.
public struct CodeFacts: Sendable, Hashable {
    public var verdict: SyntaxVerdict
    public var definesEntryPoint: Bool
    public var entryPointArityMatches: Bool
    public var indentDepth: Int
    public var lineCount: Int
}

public func codeFacts(_ program: ParsedProgram, entryPoint: EntryPoint?) -> CodeFacts {
    let report = program.report
    let match = entryPoint.flatMap { ep in report.functions.first { $0.name == ep.name } }
    return CodeFacts(verdict: report.verdict, definesEntryPoint: match != nil,
                     entryPointArityMatches: match.map { sig in entryPoint.map { sig.accepts(arity: $0.arity) } ?? false } ?? false,
                     indentDepth: report.indentDepth, lineCount: report.lineCount)
}

/// R_P(s): a pure function of the state's facts.
public func processReward(_ facts: CodeFacts, values: ProcessRewardValues) -> Double {
    switch facts.verdict {
    case .valid: return values.valid
    case .incomplete: return values.incomplete
    case .broken: return values.broken
    }
}
