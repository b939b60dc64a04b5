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
    // An entry point named without a calling test has no arity to check: defining it is enough.
    let arityMatches = entryPoint.map { ep in candidates.last.map { def in ep.arity.map(def.accepts(arity:)) ?? true } ?? false } ?? false
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
