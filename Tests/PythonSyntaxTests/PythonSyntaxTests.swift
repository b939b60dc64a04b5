import Foundation
import Testing
@testable import PythonSyntax

@Suite struct VerdictTests {
    let parser: PythonParser
    init() throws { parser = try PythonParser() }

    func verdict(_ s: String) -> SyntaxVerdict { parser.parse(s).report.verdict }

    @Test func unfinishedHeadersAreIncomplete() {
        #expect(verdict("def f(x):\n") == .incomplete)
        #expect(verdict("def f(x):") == .incomplete)
        #expect(verdict("for x in xs:\n") == .incomplete)
        #expect(verdict("def f(xs):\n    for x in xs:\n") == .incomplete)
        #expect(verdict("def f(xs):\n    total = sum(x for x in\n") == .incomplete)
        #expect(verdict("x = '''abc\n") == .incomplete)
        #expect(verdict("@cache\n") == .incomplete)
        #expect(verdict("def f():\n    try:\n        x = 1\n") == .incomplete)
        #expect(verdict("def f():\n    try:\n        x = 1\n    except ValueError:\n        pass\n") == .valid)
        // Text cut mid-word: the word may still grow into something valid.
        #expect(verdict("try:\n    x = 1\nexc") == .incomplete)
        #expect(verdict("y = f(pass") == .incomplete)
        #expect(verdict("y = f(pass)\n") == .broken)
        #expect(verdict("try:\n    x = 1\nexcept") == .incomplete)
    }

    @Test func completeProgramIsValid() {
        #expect(verdict("def add(a, b):\n    return a + b\n") == .valid)
        #expect(verdict("import re\ndef f(s):\n    return re.sub(r'\\s+', '', s)\n\nprint(f(' a b '))\n") == .valid)
        #expect(verdict("") == .valid)
    }

    @Test func mistakesAreBroken() {
        #expect(verdict("x = f(1))\n") == .broken)
        #expect(verdict("x = [1, 2)\n") == .broken)
        #expect(verdict("def f(x)\n    return x\n") == .broken)
        #expect(verdict("x = 'abc\ny = 2\n") == .broken)
        #expect(verdict("x = 4 * *a\n") == .broken)
        #expect(verdict("def f(x):\nreturn x\n") == .broken)
        #expect(verdict("x = 1\n    y = 2\n") == .broken)
        #expect(verdict("try:\n    x = 1\ny = 2\n") == .broken)
        #expect(verdict("def f(x):\n    return (x +\n        return 1\n") == .broken)
        #expect(verdict("x = = 1\n") == .broken)
    }

    @Test func unmatchedCloserIsReportedWhereItIs() throws {
        let report = parser.parse("def f(x):\n    return x)\n").report
        #expect(report.verdict == .broken)
        let issue = try #require(report.issues.first)
        #expect(issue.line == 2)
        #expect(issue.column == 13)
        #expect(issue.message == "unmatched ')'")
    }

    @Test func treeErrorSpan() throws {
        let report = parser.parse("a = 1\nb = = 2\n").report
        #expect(report.verdict == .broken)
        let issue = try #require(report.issues.first)
        #expect(issue.line == 2)
        #expect(issue.column >= 1 && issue.column <= 5)
        #expect(issue.message.contains("="))
    }

    @Test func forgottenColonIsNamed() throws {
        let report = parser.parse("def f(x):\n    for i in range(x)\n        print(i)\n").report
        #expect(report.verdict == .broken)
        let issue = try #require(report.issues.first)
        #expect(issue.line == 2 && issue.column == 22 && issue.message == "expected ':'")
    }

    @Test func columnsCountCharactersNotBytes() throws {
        let report = parser.parse("s = 'é' + 'ü')\n").report
        let issue = try #require(report.issues.first)
        #expect(issue.line == 1)
        #expect(issue.column == 14)
    }

    @Test func signatures() {
        let src = """
        def a(x, y): pass
        def b(x, y=1, *args, **kw): pass
        def c(x, *, key): pass
        @staticmethod
        def d(p: int, q: str = "") -> None: pass
        class K:
            def method(self): pass

        """
        let fs = parser.parse(src).report.functions
        #expect(fs.map(\.name) == ["a", "b", "c", "d"])
        #expect(fs[0].minArity == 2 && fs[0].maxArity == 2)
        #expect(fs[1].minArity == 1 && fs[1].maxArity == nil)
        #expect(fs[1].parameters == ["x", "y", "*args", "**kw"])
        #expect(fs[2].minArity == 1 && fs[2].maxArity == 1)
        #expect(fs[3].parameters == ["p", "q"] && fs[3].minArity == 1 && fs[3].maxArity == 2)
        #expect(fs[3].line == 5)
        #expect(fs[0].accepts(arity: 2) && !fs[0].accepts(arity: 3) && fs[1].accepts(arity: 9))
    }

    @Test func functionsSurviveAnUnfinishedLastLine() {
        let report = parser.parse("def f(a, b):\n    return (a +").report
        #expect(report.verdict == .incomplete)
        #expect(report.functions.map(\.name) == ["f"])
    }

    @Test func indentDepthAndLineCount() {
        let r1 = parser.parse("def f(xs):\n    for x in xs:\n").report
        #expect(r1.indentDepth == 2)
        #expect(r1.lineCount == 2)
        let r2 = parser.parse("def f(xs):\n    for x in xs:\n        print(x)\n    return 1\n").report
        #expect(r2.indentDepth == 1)
        #expect(r2.lineCount == 4)
        #expect(parser.parse("x = 1\n").report.indentDepth == 0)
    }

    @Test func grammarDescriptionNamesThePin() {
        #expect(PythonParser.grammarDescription.hasPrefix("tree-sitter-python 0.23.6, ABI 1"))
        #expect(SyntaxError.grammarIncompatible(grammarABI: 15, supported: 13...14).description.contains("scripts/bootstrap"))
    }
}

@Suite struct IncrementalTests {
    /// A child built with `extend` must get exactly the report a fresh parse
    /// gives, line by line over real solutions (and over partial lines too).
    @Test func extendMatchesFullParse() throws {
        let parser = try PythonParser()
        var programs = [
            "def f(xs):\n    try:\n        y = [x for x in\n             xs]\n    except:\n        pass\n    return y\n",
            "@dec\ndef g(a, b=(1,\n2)):\n    s = '''x\ny'''\n    return a)\nz = 1\n",
        ]
        if FileManager.default.fileExists(atPath: Corpus.train.path) {
            let text = try String(contentsOf: Corpus.train, encoding: .utf8)
            for line in text.split(separator: "\n").prefix(120) {
                let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                programs.append(obj["code"] as! String)
            }
        }
        var compared = 0
        for program in programs {
            // By scalars: MBPP uses CRLF, and "\r\n" is one Character.
            let lines = program.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) + "\n" }
            var node = parser.parse("")
            for line in lines {
                // Half a line first, then the rest: exercises unfinished tails.
                let half = line.index(line.startIndex, offsetBy: line.count / 2)
                for piece in [String(line[..<half]), String(line[half...])] {
                    node = parser.extend(node, appending: piece)
                    let fresh = parser.parse(node.source)
                    #expect(node.report == fresh.report, "prefix:\n\(node.source)")
                    compared += 1
                }
            }
        }
        #expect(compared > 1000 || !FileManager.default.fileExists(atPath: Corpus.train.path), "compared \(compared)")
    }
}

@Suite struct TokenizerTests {
    func kinds(_ s: String) -> [String] {
        let t = PythonTokenizer(s)
        return t.map { "\($0.kind):\(t.text(of: $0))" }
    }

    @Test func namesNumbersStringsAndWholeOperators() {
        #expect(kinds("x **= 1e-5 // 2") == ["name:x", "op:**=", "number:1e-5", "op://", "number:2"])
        #expect(kinds("f(a, b'x', rb\"y\")") == ["name:f", "op:(", "name:a", "op:,", "string:b'x'", "op:,", "string:rb\"y\"", "op:)"])
        #expect(kinds("d[k] := -> ...") == ["name:d", "op:[", "name:k", "op:]", "op::=", "op:->", "op:..."])
        // A prefix that is not a string prefix stays a name.
        #expect(kinds("xy'z'") == ["name:xy", "string:'z'"])
    }

    @Test func commentsNewlinesAndContinuations() {
        #expect(kinds("a # b(\n\\\nc") == ["name:a", "comment:# b(", "newline:\n", "continuation:\\\n", "name:c"])
        #expect(kinds("a \\ b") == ["name:a", "strayBackslash:\\", "name:b"])
    }

    @Test func unfinishedAndCutStringsAreMarked() {
        let open = Array(PythonTokenizer("x = '''abc\ndef"))
        #expect(open.last?.kind == .string && open.last?.unterminated == true)
        let cut = Array(PythonTokenizer("x = 'abc\ny"))
        #expect(cut[2].cutByNewline && !cut[2].unterminated)
        #expect(cut[3].kind == .newline)
    }

    @Test func codeTokensAreSlicesOfTheLine() {
        let line = "    return s.upper()  # shout"
        let tokens = PythonTokenizer.codeTokens(line)
        #expect(tokens.map(\.text) == ["return", "s", ".", "upper", "(", ")"])
        #expect(tokens.first?.kind == .name)
    }
}
