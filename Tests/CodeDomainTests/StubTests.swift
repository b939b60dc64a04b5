import Basics
import Foundation
import Policy
import PythonSyntax
import QStar
import Sandbox
import Synchronization
import Testing
import TestSupport
@testable import CodeDomain

/// A module with a stub between other code, as a programmer leaves it in an editor.
let stubModule = """
    \"\"\"Geometry helpers.\"\"\"
    import math

    UNIT = 1.0


    def circle_area(r):
        return math.pi * r * r


    @staticmethod
    def scale(x, factor=2):
        \"\"\"Multiply `x` by `factor`.

        >>> scale(3)
        6
        \"\"\"
        ...  # TODO


    class Box:
        def volume(self):
            raise NotImplementedError("later")

        def label(self): pass


    def after():
        return scale(UNIT)
    """

@Suite struct StubTaskTests {
    @Test func findsTheStubAndKeepsEverythingElse() throws {
        let task = try StubTasks.load(source: stubModule, path: "/src/geometry.py", function: "scale")
        let stub = try #require(task.stub)
        #expect(stub.module == "geometry")
        #expect(stub.head.hasSuffix("    >>> scale(3)\n    6\n    \"\"\"\n"))
        #expect(stub.header.hasPrefix("@staticmethod\ndef scale(x, factor=2):"))
        #expect(stub.tail.hasPrefix("\n\nclass Box:"))
        #expect(stub.indent == "    " && stub.column == 0)
        #expect(task.suite?.kind == .doctest && task.suite?.firstLine == 13)
        #expect(task.suite?.source.hasPrefix("\"\"\"Multiply") == true)
        // The program is the module with the body in place: every byte outside the function kept.
        let body = "    return x * factor\n"
        let program = task.program(stub.head + body)
        let start = program.range(of: "@staticmethod")!.lowerBound
        #expect(program[..<start] == stubModule[..<stubModule.range(of: "@staticmethod")!.lowerBound])
        #expect(program.hasSuffix(String(stubModule[stubModule.range(of: "\n\nclass Box:")!.lowerBound...])))
        let answer = try #require(task.stubAnswer(stub.head + body))
        #expect(answer.function == stub.header + body)
        // The edit replaces the stub line only, and applying it gives the program.
        #expect(answer.edit.range.start == TextEdit.Position(line: 17, character: 0))
        #expect(answer.edit.range.end == TextEdit.Position(line: 18, character: 0))
        #expect(answer.edit.newText == body)
        #expect(answer.edit.applied(to: stubModule) == program)
        // A stub is put one way whatever the framings (the defaults name two): no second attempt.
        #expect(SolveOptions.defaults.framings.count > 1)
        let domain = try CodeSearchDomain(task: task, model: ScriptedModel(), verifier: ScriptedVerifier(), options: .defaults)
        #expect(domain.alternatives().isEmpty)
    }

    @Test(arguments: [("Box.volume", "    def volume(self):\n", "        "), ("volume", "    def volume(self):\n", "        "),
                      ("Box.label", "    def label(self):\n", "        ")])
    func methodsAndOneLinersAreStubsToo(_ name: String, _ headEnd: String, _ indent: String) throws {
        let task = try StubTasks.load(source: stubModule, path: "/src/geometry.py", function: name)
        let stub = try #require(task.stub)
        #expect(stub.head.hasSuffix(headEnd) && stub.indent == indent && stub.column == 4)
        #expect(task.suite == nil && !task.hasTests)
        let program = task.program(stub.head + indent + "return 1\n")
        #expect(try ModuleOutline.read(program).verdict == .valid)
        let edit = try #require(task.stubAnswer(stub.head + indent + "return 1\n")).edit
        #expect(edit.applied(to: stubModule) == program)
        #expect(task.leavesFunction("    def other(self):") && task.leavesFunction("x = 1") && !task.leavesFunction("        y = 2"))
    }

    @Test func badInputSaysWhatIsWrong() throws {
        #expect(throws: StubError.noSuchFunction("/src/geometry.py", function: "nope",
                                                 available: ["circle_area", "scale", "Box.volume", "Box.label", "after"])) {
            try StubTasks.load(source: stubModule, path: "/src/geometry.py", function: "nope")
        }
        #expect(throws: StubError.notAStub("/src/geometry.py", function: "circle_area", line: 7, statement: "return math.pi * r * r")) {
            try StubTasks.load(source: stubModule, path: "/src/geometry.py", function: "circle_area")
        }
        #expect { try StubTasks.load(source: "def f(:\n    ...\n", function: "f") } throws: {
            "\($0)".contains("does not parse (line 1")
        }
        let dir = try tempDirectory("stub-tests")
        let bad = dir.appendingPathComponent("test_bad.py")
        try "def test_x(:\n    pass\n".write(to: bad, atomically: true, encoding: .utf8)
        #expect { try StubTasks.load(source: stubModule, function: "scale", testFile: bad.path) } throws: {
            "\($0)".contains("the test file \(bad.path) does not parse")
        }
        #expect { try StubTasks.load(source: stubModule, function: "scale", testFile: dir.appendingPathComponent("none.py").path) } throws: {
            "\($0)".contains("cannot read")
        }
        let twice = "class A:\n    def f(self): ...\nclass B:\n    def f(self): ...\n"
        #expect(throws: StubError.ambiguous("the module", function: "f", candidates: ["A.f", "B.f"])) {
            try StubTasks.load(source: twice, function: "f")
        }
    }

    @Test func testsComeFromWhereTheyLiveInOrder() throws {
        let dir = try tempDirectory("stub-discovery")
        let module = dir.appendingPathComponent("geometry.py")
        let plain = stubModule.replacingOccurrences(of: "\n\n    >>> scale(3)\n    6\n    ", with: "")
        #expect(!plain.contains(">>>"))
        // Nothing: the solve will say no test verified it.
        #expect(try StubTasks.load(source: plain, path: module.path, function: "scale").suite == nil)
        // tests/test_geometry.py, only when its tests name the function.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("tests"), withIntermediateDirectories: true)
        try "def test_area():\n    assert circle_area(0) == 0\n".write(to: dir.appendingPathComponent("tests/test_geometry.py"),
                                                                         atomically: true, encoding: .utf8)
        #expect(try StubTasks.load(source: plain, path: module.path, function: "scale").suite == nil)
        try "from geometry import scale\n\ndef test_scale():\n    assert scale(2) == 4\n"
            .write(to: dir.appendingPathComponent("tests/test_geometry.py"), atomically: true, encoding: .utf8)
        let nested = try #require(try StubTasks.load(source: plain, path: module.path, function: "scale").suite)
        #expect(nested.kind == .pytest && nested.select == "scale" && nested.origin.hasSuffix("tests/test_geometry.py"))
        // test_geometry.py beside the module comes first.
        try "import geometry\n\ndef test_scale():\n    assert geometry.scale(1) == 2\n"
            .write(to: dir.appendingPathComponent("test_geometry.py"), atomically: true, encoding: .utf8)
        let beside = try #require(try StubTasks.load(source: plain, path: module.path, function: "scale").suite)
        #expect(beside.origin == dir.appendingPathComponent("test_geometry.py").path)
        // A docstring that only mentions `>>>` has no examples.
        let mention = plain.replacingOccurrences(of: "Multiply `x` by `factor`.", with: "Multiply `x` (see the >>> prompt).")
        #expect(try StubTasks.load(source: mention, path: module.path, function: "scale").suite?.kind == .pytest)
        // Docstring examples before a test file beside the module.
        #expect(try StubTasks.load(source: stubModule, path: module.path, function: "scale").suite?.kind == .doctest)
        // An explicit test file before everything.
        let explicit = dir.appendingPathComponent("mine.py")
        try "assert scale(5) == 10\n".write(to: explicit, atomically: true, encoding: .utf8)
        let chosen = try StubTasks.load(source: stubModule, path: module.path, function: "scale", testFile: explicit.path)
        #expect(chosen.suite?.origin == explicit.path && chosen.suite?.kind == .pytest)
        let job = try #require(chosen.verificationJob(chosen.initialProgram + "    return x * factor\n"))
        #expect(job.kind == .pytest && job.module == "geometry" && job.select == "scale" && job.tests == "assert scale(5) == 10\n")
        #expect(job.program.hasSuffix("def after():\n    return scale(UNIT)"))
    }

    @Test func thePromptContinuesTheFunctionFromItsDocstring() throws {
        let task = try StubTasks.load(source: stubModule, function: "scale")
        let prefix = PromptBuilder().prefix(for: task)
        #expect(prefix.contains("Complete the Python function `scale`"))
        #expect(prefix.contains("The module continues after the function:\n```python\nclass Box:"))
        #expect(prefix.hasSuffix("<|im_start|>assistant\n```python\n"))
        #expect(!prefix.contains("Your code should pass"))
        // Worked examples are MBPP-shaped tasks, not stubs: a stub is put one way only.
        #expect(PromptBuilder().prefix(for: task, framing: .examples) == prefix)
        let plain = PromptBuilder(style: .plain).prefix(for: task)
        #expect(plain == "# Complete the function `scale`, keeping its signature and docstring.\n")
    }

    @Test func generatedTextIsCutWhereItLeavesTheFunction() throws {
        let task = try StubTasks.load(source: stubModule, function: "scale")
        let clipped = task.clip("    y = x\n    return y\n\nprint(scale(2))\n```", after: task.initialProgram)
        #expect(clipped.text == "    y = x\n    return y\n\n" && clipped.cut)
        #expect(task.clip("    return x", after: task.initialProgram) == ("    return x", false))
        // Mid-line, the first piece continues the line it is on.
        #expect(task.clip("x\nz = 1", after: task.initialProgram + "    return ").text == "x\n")
        #expect(task.stops.contains("\ndef "))
        #expect(addTask.clip("x\ny", after: "") == ("x\ny", false) && addTask.stops.isEmpty)
    }

    @Test func editsAreWholeLinesInUTF16() {
        let old = "a\nbé\nc"
        let edit = TextEdit.lines(from: old, to: "a\nbé\nc\nd\n")
        #expect(edit.range.start == TextEdit.Position(line: 2, character: 0))
        #expect(edit.range.end == TextEdit.Position(line: 2, character: 1))
        #expect(edit.newText == "c\nd\n")
        #expect(edit.applied(to: old) == "a\nbé\nc\nd\n")
        let crlf = "x\r\n    ...\r\ny\r\n"
        let e2 = TextEdit.lines(from: crlf, to: "x\r\n    return 1\r\ny\r\n")
        #expect(e2.range.start.line == 1 && e2.range.end.line == 2 && e2.newText == "    return 1\r\n")
        let same = TextEdit.lines(from: "x", to: "x")
        #expect(same.newText.isEmpty && same.applied(to: "x") == "x")
    }
}

@Suite struct StubSearchTests {
    static let module = "import math\n\n\ndef double(x):\n    \"\"\"Twice x.\n\n    >>> double(2)\n    4\n    \"\"\"\n    pass\n\n\ndef other():\n    return 1\n"

    @Test func aSearchWritesTheBodyAndStopsWhereTheFunctionEnds() async throws {
        let task = try StubTasks.load(source: Self.module, path: "/src/mathy.py", function: "double")
        let head = String(task.initialProgram.dropLast())
        let model = ScriptedModel(lines: [
            head: [line("    return x + x", -0.1)],
            head + "\n    return x + x": [line("", -0.1), line("def extra():", -0.2)],
            head + "\n    return x + x\n": [line("print(double(2))", -0.1)],
        ])
        let verifier = ScriptedVerifier(passing: "return x + x")
        let result = try await Solver(model: model, verifier: verifier)
            .solve(task, options: { var o = SolveOptions(); o.search.k = 2; o.search.continuations = false; o.search.budget.maxExpansions = 10; return o }())
        #expect(result.solved && result.verified && result.tests == "the docstring of double")
        #expect(result.function == "def double(x):\n    \"\"\"Twice x.\n\n    >>> double(2)\n    4\n    \"\"\"\n    return x + x\n")
        #expect(result.program == Self.module.replacingOccurrences(of: "    pass\n", with: "    return x + x\n"))
        #expect(result.edit?.newText == "    return x + x\n" && result.edit?.range.start.line == 9)
        let job = try #require(verifier.jobs.withLock { $0.first })
        #expect(job.kind == .doctest && job.module == "mathy" && job.firstLine == 5)
        #expect(job.program.hasSuffix("def other():\n    return 1\n"))
        // Every prompt continues the module up to the body.
        #expect(model.prompts.allSatisfy { $0.contains("```python\nimport math\n\n\ndef double(x):") })
    }

    /// Whole continuations (the default search) are cut where the text leaves the function.
    @Test(arguments: ["qstar", "best-of-n", "greedy"])
    func aSampledBodyEndsWhereTheFunctionEnds(method: String) async throws {
        let task = try StubTasks.load(source: Self.module, path: "/src/mathy.py", function: "double")
        let model = ScriptedModel(programs: [CompletionChoice(text: "    return x + x\n\n\ndef extra():\n    return 2\n",
                                                              tokenLogprobs: [-0.1], finish: .stop, tokens: 12)])
        let verifier = ScriptedVerifier(passing: "return x + x")
        var options = SolveOptions()
        options.method = method
        let result = try await Solver(model: model, verifier: verifier).solve(task, options: options)
        #expect(result.solved)
        #expect(result.program == Self.module.replacingOccurrences(of: "    pass\n", with: "    return x + x\n"))
        #expect(verifier.jobs.withLock { $0 }.allSatisfy { !$0.program.contains("extra") })
        #expect(model.requests.withLock { $0 }.allSatisfy { $0.stop.contains("\ndef ") })
    }

    @Test func withoutTestsTheAnswerIsTheBestBySyntaxAndPolicyAndSaysSo() async throws {
        let plain = Self.module.replacingOccurrences(of: "\n\n    >>> double(2)\n    4\n    ", with: "")
        let task = try StubTasks.load(source: plain, function: "double")
        #expect(!task.hasTests)
        let head = String(task.initialProgram.dropLast())
        let model = ScriptedModel(lines: [
            head: [line("    return x * 2", -0.1), line("    return (x *", -0.05)],
            head + "\n    return x * 2": [line("", -0.1, finish: .endOfText)],
            head + "\n    return (x *": [line("", -0.1, finish: .endOfText)],
        ])
        let result = try await Solver(model: model, verifier: NoVerifier())
            .solve(task, options: { var o = SolveOptions(); o.search.continuations = false; o.search.budget.maxExpansions = 10; return o }())
        #expect(!result.verified && !result.solved && result.passed == 0 && result.total == 0 && result.tests == nil)
        #expect(result.outcome == "unverified" && result.asserts.isEmpty && result.verdict == nil)
        #expect(result.function?.hasSuffix("    return x * 2\n") == true)
        #expect(result.summaryLine.hasPrefix("# UNVERIFIED: no tests found, nothing ran this program"))
    }

    @Test func greedyRolloutsAreClippedToTheFunction() async throws {
        let task = try StubTasks.load(source: Self.module, path: "/src/mathy.py", function: "double")
        let model = ScriptedModel(programs: [line("    return 2 * x\n\n\nprint(double(3))\n", -0.1, finish: .stop)])
        let verifier = ScriptedVerifier(passing: "return 2 * x")
        var options = SolveOptions()
        options.method = "greedy"
        let result = try await Solver(model: model, verifier: verifier).solve(task, options: options)
        #expect(result.solved)
        #expect(result.function?.hasSuffix("    return 2 * x\n") == true)
        #expect(!(result.program ?? "").contains("print(double(3))"))
        let request = try #require(model.requests.withLock { $0.first })
        #expect(request.stop.contains("\ndef ") && request.stop.contains("```"))
    }
}

/// Runs jobs in the real jail and keeps them, so a test can see what each side was shown.
final class RecordingJail: ProgramVerifier {
    let jail: Jail
    let jobs = Mutex<[JailJob]>([])
    init() throws { jail = try Jail() }
    func run(_ job: JailJob) async throws -> TestReport {
        jobs.withLock { $0.append(job) }
        return try await jail.run(job)
    }
}

@Suite struct HumanEvalTests {
    static let record: [String: String] = [
        "task_id": "HumanEval/999",
        "prompt": "from typing import List\n\n\ndef running_max(xs: List[int]) -> List[int]:\n    \"\"\" The largest element so far at each position.\n    >>> running_max([1, 3, 2])\n    [1, 3, 3]\n    \"\"\"\n",
        "entry_point": "running_max",
        "canonical_solution": "    out = []\n    for x in xs:\n        out.append(max(out[-1], x) if out else x)\n    return out\n",
        "test": "\n\nMETADATA = {'author': 'qcode'}\n\n\ndef check(candidate):\n    assert candidate([]) == []\n    assert candidate([1, 3, 2]) == [1, 3, 3]\n    assert candidate([-5, -7, -1]) == [-5, -5, -1]\n",
    ]

    static func file(_ records: [[String: String]]) throws -> URL {
        let url = try tempDirectory("humaneval").appendingPathComponent("HumanEval.jsonl")
        let lines = try records.map { String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self) }
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test func aRecordIsAStubWhoseVisibleTestsAreTheDocstringAndWhoseScoreIsCheck() throws {
        let tasks = try TaskLoader.benchmarkFile(Self.file([Self.record]))
        let task = try #require(tasks.first)
        #expect(task.id == "HumanEval/999" && task.entryPoint == "running_max")
        #expect(task.stub?.head == Self.record["prompt"])
        #expect(task.suite?.kind == .doctest && task.suite?.origin == "the docstring of running_max")
        #expect(task.scoring?.kind == .pytest && task.scoring?.source.hasSuffix("def test_check():\n    check(running_max)\n") == true)
        #expect(task.reference == Self.record["canonical_solution"])
        #expect(task.tests.isEmpty && task.visible(1).suite == task.suite)
        #expect { try TaskLoader.benchmarkFile(URL(fileURLWithPath: "/tmp/HumanEval.jsonl.gz")) } throws: { "\($0)".contains("gzip") }
        var broken = Self.record
        broken["entry_point"] = "nope"
        #expect { try TaskLoader.benchmarkFile(Self.file([broken])) } throws: { "\($0)".contains("no function `nope`") }
    }

    /// HumanEval/115's prompt starts the body with `import math` before its docstring-like
    /// string: the prompt is code to continue, so those lines stay and the body follows them.
    @Test func aPromptWhoseBodyHasBegunIsContinued() throws {
        var record = Self.record
        record["prompt"] = "\ndef max_fill(grid, capacity):\n    import math\n    \"\"\"\n    Example: max_fill([[1]], 1) == 1\n    \"\"\"\n"
        record["entry_point"] = "max_fill"
        let task = try #require(try TaskLoader.benchmarkFile(Self.file([record])).first)
        #expect(task.stub?.head == record["prompt"] && task.stub?.indent == "    " && task.suite == nil)
        #expect(task.program(task.initialProgram + "    return 1\n").hasSuffix("    \"\"\"\n    return 1\n"))
        // A module given by a user still has to be a stub.
        #expect { try StubTasks.load(source: record["prompt"]!, function: "max_fill") } throws: { "\($0)".contains("already has a body (`import math`)") }
    }

    /// The protocol: the search sees the prompt and the docstring's examples, never
    /// `check` or the canonical solution; `check` alone scores.
    @Test func theSearchSeesTheDocstringAndCheckScores() async throws {
        let task = try #require(try TaskLoader.benchmarkFile(Self.file([Self.record])).first)
        // Right on the docstring's example, wrong on check's negative numbers.
        let model = ScriptedModel(programs: [line("    out = []\n    for x in xs:\n        out.append(max(out[-1] if out else 0, x))\n    return out\n```", finish: .stop)])
        let search = try RecordingJail(), scorer = try RecordingJail()
        var options = SolveOptions()
        options.method = "greedy"
        let bench = Benchmark(solver: Solver(model: model, verifier: search), scorer: scorer)
        let result = try await bench.run(task, options: options)
        #expect(result.visiblePassed && !result.passed && result.testsTotal == 1 && result.testsPassed == 0)
        let shown = search.jobs.withLock { $0 }
        #expect(!shown.isEmpty && shown.allSatisfy { $0.kind == .doctest && $0.tests == task.suite?.source })
        let check = Self.record["test"]!, solution = Self.record["canonical_solution"]!
        #expect(shown.allSatisfy { !$0.tests.contains("def check") && !$0.program.contains(solution) })
        #expect(model.prompts.allSatisfy { !$0.contains("def check") && !$0.contains("candidate") && !$0.contains(solution) })
        let scored = try #require(scorer.jobs.withLock { $0.first })
        #expect(scored.kind == .pytest && scored.tests.hasPrefix(check) && scored.program == result.program)
        // The canonical solution passes check through the same path.
        let right = ScriptedModel(programs: [line(solution + "```", finish: .stop)])
        let good = try await Benchmark(solver: Solver(model: right, verifier: search), scorer: scorer).run(task, options: options)
        #expect(good.passed && good.visiblePassed && good.testsPassed == 1)
    }
}
