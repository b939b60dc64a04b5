// PythonSyntax: a syntax verdict for whole or partial Python programs, used by
// the search as its process reward (prune broken branches early, never prune
// a prefix that is merely unfinished).

/// How far a (possibly partial) program is from being syntactically sound.
public enum SyntaxVerdict: String, Sendable, Codable {
    /// Complete and parses clean (CPython may still reject it: the grammar is
    /// lenient, and the jail compiles the final program anyway).
    case valid
    /// Fine so far: an open block, an unfinished last line.
    case incomplete
    /// Already wrong: no continuation can repair it.
    case broken
}

/// One reason for a `broken` verdict.
public struct SyntaxIssue: Sendable, Codable, Hashable {
    /// 1-based line.
    public var line: Int
    /// 1-based column, counted in Unicode scalars.
    public var column: Int
    /// What is wrong, with a snippet of the text at the position.
    public var message: String

    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }
}

/// A top-level `def`, enough to check it against the call in a visible test.
public struct FunctionSignature: Sendable, Codable, Hashable {
    public var name: String
    /// Parameter names as written, splats with their stars (`*args`, `**kw`).
    public var parameters: [String]
    /// Positional arguments a call must pass.
    public var minArity: Int
    /// Positional arguments a call may pass; nil when there is `*args`.
    public var maxArity: Int?
    /// 1-based line of the `def`.
    public var line: Int

    public init(name: String, parameters: [String], minArity: Int, maxArity: Int?, line: Int) {
        self.name = name
        self.parameters = parameters
        self.minArity = minArity
        self.maxArity = maxArity
        self.line = line
    }

    /// Whether a call with `arity` positional arguments fits.
    public func accepts(arity: Int) -> Bool {
        arity >= minArity && (maxArity.map { arity <= $0 } ?? true)
    }
}

public struct SyntaxReport: Sendable, Codable, Hashable {
    public var verdict: SyntaxVerdict
    /// Empty unless the verdict is `broken`.
    public var issues: [SyntaxIssue]
    /// Top-level function definitions (including decorated ones) found in the
    /// complete logical lines.
    public var functions: [FunctionSignature]
    /// Open block depth at the end of the text (a header awaiting its body counts).
    public var indentDepth: Int
    public var lineCount: Int

    public init(verdict: SyntaxVerdict, issues: [SyntaxIssue], functions: [FunctionSignature], indentDepth: Int, lineCount: Int) {
        self.verdict = verdict
        self.issues = issues
        self.functions = functions
        self.indentDepth = indentDepth
        self.lineCount = lineCount
    }
}

public enum SyntaxError: Error, CustomStringConvertible {
    /// The linked grammar's ABI is one libtree-sitter cannot load.
    case grammarIncompatible(grammarABI: Int, supported: ClosedRange<Int>)
    /// `ts_parser_new` returned NULL (out of memory).
    case parserUnavailable

    public var description: String {
        switch self {
        case let .grammarIncompatible(abi, supported):
            return "the tree-sitter-python grammar has ABI \(abi) but libtree-sitter loads ABI \(supported.lowerBound)...\(supported.upperBound): "
                + "run scripts/bootstrap to fetch the pinned grammar (tree-sitter-python \(PythonParser.grammarVersion)), then rebuild"
        case .parserUnavailable:
            return "libtree-sitter could not allocate a parser (out of memory?): free memory or lower the search's parallelism"
        }
    }
}
