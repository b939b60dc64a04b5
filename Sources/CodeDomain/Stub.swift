import Foundation
import PythonSyntax
import Sandbox

/// A function stub in a module: what a stub task keeps byte for byte around the
/// body qcode writes. The search's states start as `head` (the module up to the
/// body: imports, helpers, decorators, the `def` line, the docstring) and grow by
/// body lines; the program the tests run is that text followed by `tail`.
public struct StubContext: Sendable, Hashable, Codable {
    /// The module as given.
    public var source: String
    /// Where it lives, when it is a file.
    public var path: String?
    /// The function as named (`f`, or `Class.f` for a method).
    public var function: String
    /// The module up to where the body starts, ending with a newline.
    public var head: String
    /// The module after the stub's last line.
    public var tail: String
    /// UTF-8 offset of the function (its first decorator) in `source` and in `head`.
    public var functionStart: Int
    /// Column of `def`: a line indented no deeper has left the function.
    public var column: Int
    /// The body's indentation as the file writes it.
    public var indent: String
    /// The program's module name (`__name__`, and what the tests import), from the file name.
    public var module: String?
    /// The docstring's literal as written, and the line it starts on.
    public var docstring: String?
    public var docstringLine: Int?
    /// 1-based line of `def`.
    public var line: Int

    /// The function's header as the file has it: decorators, `def`, docstring.
    public var header: String { String(decoding: Array(head.utf8)[functionStart...], as: UTF8.self) }
}

/// Where a task's tests live, when they are not a list of top-level asserts.
public struct TestSuite: Sendable, Hashable, Codable {
    public var kind: TestKind
    /// A pytest-style file, or a docstring's literal.
    public var source: String
    /// Where they came from, for people: "examples/slugs/test_slugs.py", "the docstring of area".
    public var origin: String
    /// pytest: only test functions that reach this name.
    public var select: String?
    /// doctest: the module line the docstring starts on.
    public var firstLine: Int

    public init(kind: TestKind, source: String, origin: String, select: String? = nil, firstLine: Int = 1) {
        self.kind = kind
        self.source = source
        self.origin = origin
        self.select = select
        self.firstLine = firstLine
    }
}

/// An edit an editor can apply: LSP's `TextEdit` (0-based lines, UTF-16 columns).
public struct TextEdit: Sendable, Codable, Hashable {
    public struct Position: Sendable, Codable, Hashable {
        public var line: Int
        public var character: Int
        public init(line: Int, character: Int) {
            self.line = line
            self.character = character
        }
    }
    public struct Range: Sendable, Codable, Hashable {
        public var start: Position
        public var end: Position
        public init(start: Position, end: Position) {
            self.start = start
            self.end = end
        }
    }
    public var range: Range
    public var newText: String

    public init(range: Range, newText: String) {
        self.range = range
        self.newText = newText
    }

    /// The smallest run of whole lines that turns `old` into `new`. Lines are split on
    /// LF bytes, so CRLF files keep their line ends.
    public static func lines(from old: String, to new: String) -> TextEdit {
        let a = byteLines(old), b = byteLines(new)
        var prefix = 0
        while prefix < a.count, prefix < b.count, a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix, suffix < b.count - prefix, a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
        let text = String(decoding: b[prefix..<(b.count - suffix)].joined(), as: UTF8.self)
        let endLine = a.count - suffix
        // The line after the last exists only when the file ends with a newline;
        // otherwise the range ends at the end of the last line.
        guard endLine == a.count, let last = a.last, last.last != 0x0A else {
            return TextEdit(range: Range(start: Position(line: prefix, character: 0), end: Position(line: endLine, character: 0)),
                            newText: text)
        }
        let end = Position(line: a.count - 1, character: String(decoding: last, as: UTF8.self).utf16.count)
        let start = prefix == a.count ? end : Position(line: prefix, character: 0)
        return TextEdit(range: Range(start: start, end: end), newText: text)
    }

    static func byteLines(_ s: String) -> [ArraySlice<UInt8>] {
        let bytes = Array(s.utf8)
        var out: [ArraySlice<UInt8>] = []
        var start = 0
        for (i, b) in bytes.enumerated() where b == 0x0A {
            out.append(bytes[start...i])
            start = i + 1
        }
        if start < bytes.count { out.append(bytes[start...]) }
        return out
    }

    /// This edit applied to `text`, as an editor applies it.
    public func applied(to text: String) -> String {
        let bytes = Array(text.utf8)
        var starts = [0]
        for (i, b) in bytes.enumerated() where b == 0x0A { starts.append(i + 1) }
        func offset(_ p: Position) -> Int {
            guard p.line < starts.count else { return bytes.count }
            let lineEnd = p.line + 1 < starts.count ? starts[p.line + 1] : bytes.count
            let line = String(decoding: bytes[starts[p.line]..<lineEnd], as: UTF8.self)
            let prefix = String(line.utf16.prefix(p.character)) ?? line
            return starts[p.line] + prefix.utf8.count
        }
        let a = offset(range.start), z = offset(range.end)
        return String(decoding: bytes[..<a], as: UTF8.self) + newText + String(decoding: bytes[z...], as: UTF8.self)
    }
}

public enum StubError: Error, Sendable, CustomStringConvertible, Equatable {
    case unparsable(String, line: Int, message: String)
    case noSuchFunction(String, function: String, available: [String])
    case ambiguous(String, function: String, candidates: [String])
    case notAStub(String, function: String, line: Int, statement: String)
    case testFileUnparsable(String, line: Int, message: String)

    public var description: String {
        switch self {
        case let .unparsable(path, line, message):
            return "\(path) does not parse (line \(line): \(message)): fix the module first; qcode fills a stub in a module that parses"
        case let .noSuchFunction(path, function, available):
            return "\(path) has no function `\(function)`"
                + (available.isEmpty ? " (it defines none)" : "; it defines: \(available.joined(separator: ", "))")
        case let .ambiguous(path, function, candidates):
            return "`\(function)` names several methods in \(path): choose one with \(candidates.joined(separator: " or "))"
        case let .notAStub(path, function, line, statement):
            return "`\(function)` in \(path) (line \(line)) already has a body (`\(statement)`): qcode writes only bodies that are "
                + "empty, `...`, `pass` or `raise NotImplementedError`"
        case let .testFileUnparsable(path, line, message):
            return "the test file \(path) does not parse (line \(line): \(message)): fix it, or name another with --tests"
        }
    }
}

/// Stub tasks: a module, a function to fill, and the tests found where they live.
public enum StubTasks {
    /// The task for `function` in `source`. Tests, in order: `testFile`; the docstring's
    /// `>>>` examples; `test_<module>.py` or `tests/test_<module>.py` beside the module
    /// (`path`), when it names the function; else none (the solve says nothing verified it).
    /// - Parameter continuing: keep the body's statements and continue after them (HumanEval's
    ///   prompts are code to continue, and one, 115, starts its body with `import math`).
    public static func load(source: String, path: String? = nil, function: String, testFile: String? = nil,
                            id: String? = nil, continuing: Bool = false) throws -> CodeTask {
        let place = path ?? "the module"
        let outline = try ModuleOutline.read(source)
        if outline.verdict != .valid {
            let issue = outline.issues.first
            throw StubError.unparsable(place, line: issue?.line ?? 0, message: issue?.message ?? "incomplete at the end")
        }
        var site = try find(function, in: outline.functions, place: place)
        var kept: Range<Int>?
        if continuing, let first = site.statements.first, let last = site.statements.last {
            // What the body has so far stays: the search continues after it.
            kept = first.range.lowerBound..<last.range.upperBound
            site.statements = []
        }
        if let bad = site.statements.first(where: { $0.placeholder == nil }) {
            let first = bad.text.split(separator: "\n").first.map(String.init) ?? bad.text
            throw StubError.notAStub(place, function: function, line: site.line, statement: String(first.prefix(60)))
        }
        var stub = context(source: source, path: path, function: function, site: site, kept: kept)
        stub.module = path.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
            .flatMap { $0.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) ? $0 : nil }
        let suite = try tests(for: stub, site: site, explicit: testFile)
        let taskID = id ?? site.qualifiedName
        var task = CodeTask(id: taskID, text: stub.header, tests: [], entryPoint: site.name)
        task.stub = stub
        task.suite = suite
        return task
    }

    static func find(_ function: String, in sites: [FunctionSite], place: String) throws -> FunctionSite {
        if let exact = sites.last(where: { $0.qualifiedName == function }) { return exact }
        let methods = sites.filter { $0.name == function && $0.qualifiedName != $0.name }
        if methods.count == 1 { return methods[0] }
        if methods.count > 1 { throw StubError.ambiguous(place, function: function, candidates: methods.map(\.qualifiedName)) }
        throw StubError.noSuchFunction(place, function: function, available: sites.map(\.qualifiedName))
    }

    /// - Parameter kept: body statements that stay (a continued body), after the docstring.
    static func context(source: String, path: String?, function: String, site: FunctionSite, kept: Range<Int>? = nil) -> StubContext {
        let bytes = Array(source.utf8)
        func lineEnd(_ i: Int) -> Int {
            var j = min(i, bytes.count)
            while j < bytes.count, bytes[j] != 0x0A { j += 1 }
            return j
        }
        func lineStart(_ i: Int) -> Int {
            var j = min(i, bytes.count)
            while j > 0, bytes[j - 1] != 0x0A { j -= 1 }
            return j
        }
        let keepEnd = kept?.upperBound ?? site.docstring?.upperBound ?? site.headerEnd
        let lastEnd = site.statements.last?.range.upperBound ?? keepEnd
        // `def f(x): ...` or `"""doc"""; pass`: the stub shares a line with what stays.
        let inline = site.statements.first.map { lineEnd(keepEnd) >= $0.range.lowerBound } ?? false
        var head: [UInt8]
        var indent: String
        if inline {
            head = Array(bytes[..<keepEnd]) + [0x0A]
            indent = String(repeating: " ", count: site.column + 4)
            if let doc = site.docstring {
                indent = String(decoding: bytes[lineStart(doc.lowerBound)..<doc.lowerBound], as: UTF8.self)
                    .filter { $0 == " " || $0 == "\t" }
            }
        } else {
            let end = lineEnd(keepEnd)
            head = Array(bytes[..<end]) + [0x0A]
            let firstBody = site.docstring?.lowerBound ?? kept?.lowerBound ?? site.statements.first?.range.lowerBound ?? keepEnd
            indent = String(decoding: bytes[lineStart(firstBody)..<firstBody], as: UTF8.self)
        }
        if indent.isEmpty || indent.contains(where: { $0 != " " && $0 != "\t" }) {
            indent = String(repeating: " ", count: site.bodyColumn)
        }
        let tailStart = min(lineEnd(lastEnd) + 1, bytes.count)
        let tail = String(decoding: bytes[tailStart...], as: UTF8.self)
        var docstring: String?
        if let d = site.docstring { docstring = String(decoding: bytes[d], as: UTF8.self) }
        return StubContext(source: source, path: path, function: function, head: String(decoding: head, as: UTF8.self),
                           tail: tail, functionStart: site.start, column: site.column, indent: indent, module: nil,
                           docstring: docstring, docstringLine: site.docstringLine, line: site.line)
    }

    static func tests(for stub: StubContext, site: FunctionSite, explicit: String?) throws -> TestSuite? {
        if let explicit {
            let text = try TaskLoader.read(URL(fileURLWithPath: explicit))
            let report = try PythonParser().parse(text).report
            if report.verdict != .valid {
                let issue = report.issues.first
                throw StubError.testFileUnparsable(explicit, line: issue?.line ?? report.lineCount,
                                                   message: issue?.message ?? "incomplete at the end")
            }
            return TestSuite(kind: .pytest, source: text, origin: explicit, select: site.name)
        }
        // An example is a line that starts with `>>>` (doctest's syntax), not any mention of it;
        // the first line may follow the opening quotes.
        if let doc = stub.docstring, doc.split(separator: "\n").contains(where: {
            let t = $0.drop(while: { $0 == " " || $0 == "\t" || $0 == "\"" || $0 == "'" || $0 == "r" || $0 == "u" })
            return t.hasPrefix(">>> ") || t == ">>>"
        }) {
            return TestSuite(kind: .doctest, source: doc, origin: "the docstring of \(stub.function)",
                             firstLine: stub.docstringLine ?? site.line + 1)
        }
        guard let path = stub.path, let module = stub.module else { return nil }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        for candidate in ["test_\(module).py", "tests/test_\(module).py"] {
            let url = dir.appendingPathComponent(candidate)
            guard let text = try? String(contentsOf: url, encoding: .utf8) else { continue }
            // Only a file whose tests call the function: others test the rest of the module.
            let names = Set(PythonTokenizer(text).lazy.filter { $0.kind == .name }.map { String(PythonTokenizer(text).text(of: $0)) })
            guard names.contains(site.name), text.contains("def test") else { continue }
            return TestSuite(kind: .pytest, source: text, origin: url.path, select: site.name)
        }
        return nil
    }
}

extension CodeTask {
    /// Where a search starts: the module up to the body for a stub, else nothing.
    public var initialProgram: String { stub?.head ?? "" }

    /// Whether anything will judge the programs: a test suite, or asserts.
    public var hasTests: Bool { suite != nil || !tests.isEmpty }

    /// Where the visible tests came from, for people.
    public var testsOrigin: String? {
        if let suite { return suite.origin }
        return tests.isEmpty ? nil : "\(tests.count) assert\(tests.count == 1 ? "" : "s")"
    }

    /// The whole program for a search state's code: for a stub, the module with the body in place.
    public func program(_ code: String) -> String {
        guard let stub else { return code }
        let body = code.isEmpty || code.hasSuffix("\n") ? code : code + "\n"
        return body + stub.tail
    }

    /// What the search wrote after `initialProgram`.
    public func written(_ code: String) -> String {
        let start = initialProgram
        guard code.hasPrefix(start) else { return code }
        return String(code.dropFirst(start.count))
    }

    /// The jail job that judges a search state against the visible tests; nil without tests.
    public func verificationJob(_ code: String) -> JailJob? {
        let program = program(code)
        if let suite {
            return JailJob(program: program, tests: suite.source, setup: setup, kind: suite.kind, module: stub?.module,
                           select: suite.select, firstLine: suite.firstLine)
        }
        guard !tests.isEmpty else { return nil }
        return JailJob(program: program, tests: tests.joined(separator: "\n"), setup: setup, module: stub?.module)
    }

    /// The job that scores a finished program (a whole program, `SolveResult.program`):
    /// `scoring` when the task has one (HumanEval's `check`), else all of `tests`.
    public func scoringJob(_ program: String) -> JailJob {
        if let scoring {
            return JailJob(program: program, tests: scoring.source, setup: setup, kind: scoring.kind, module: stub?.module,
                           select: scoring.select, firstLine: scoring.firstLine)
        }
        return JailJob(program: program, tests: tests.joined(separator: "\n"), setup: setup, module: stub?.module)
    }

    /// Checks the visible tests are known to hold before they run (asserts; a suite counts its own).
    public var expectedChecks: Int { suite == nil ? tests.count : 0 }

    /// A generated line that leaves the function being written (a stub's body ends at the
    /// first line indented no deeper than its `def`).
    public func leavesFunction(_ line: String) -> Bool {
        guard let stub else { return false }
        let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
        guard !trimmed.isEmpty else { return false }
        return line.count - trimmed.count <= stub.column
    }

    /// The part of generated `text`, appended to `code`, that still belongs to the
    /// function, and whether the rest was cut.
    public func clip(_ text: String, after code: String) -> (text: String, cut: Bool) {
        guard stub != nil else { return (text, false) }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let startsLine = code.isEmpty || code.hasSuffix("\n")
        for i in lines.indices where (i > 0 || startsLine) && leavesFunction(String(lines[i])) {
            lines.removeSubrange(i...)
            return (lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n"), true)
        }
        return (text, false)
    }

    /// Stop strings that end a stub's body early (the clip above is what decides).
    public var stops: [String] {
        guard let stub else { return [] }
        if stub.column == 0 { return ["\ndef ", "\nclass ", "\nif __name__", "\nprint("] }
        let indent = String(repeating: " ", count: stub.column)
        return ["\n\(indent)def ", "\n\(indent)@", "\ndef ", "\nclass "]
    }

    /// For a finished stub program: the whole function and the edit that puts it in the file.
    public func stubAnswer(_ code: String) -> (function: String, edit: TextEdit)? {
        guard let stub else { return nil }
        let full = program(code)
        let bytes = Array(full.utf8)
        let end = bytes.count - Array(stub.tail.utf8).count
        guard stub.functionStart <= end else { return nil }
        var function = String(decoding: bytes[stub.functionStart..<end], as: UTF8.self)
        while function.hasSuffix("\n\n") { function.removeLast() }
        return (function, TextEdit.lines(from: stub.source, to: full))
    }
}
