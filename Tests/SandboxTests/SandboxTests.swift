import Foundation
import Testing
@testable import Sandbox

@Suite("Jail", .serialized)
struct JailTests {
    let jail: Jail

    init() throws {
        jail = try Jail()
    }

    @Test func correctProgramPasses() async throws {
        let r = try await jail.run(JailJob(program: "def add(a, b):\n    return a + b\n",
                                           tests: "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"))
        #expect(r.outcome == .passed)
        #expect(r.passed == 2 && r.failed == 0 && r.total == 2)
        #expect(r.syntaxError == nil && r.signal == nil)
        #expect(r.isolation == .namespaces)
        #expect(r.wallMs > 0 && r.cpuMs > 0)
    }

    @Test func mbppStyleWithSetupCode() async throws {
        let job = JailJob(program: "def area(r):\n    return math.pi * r * r\n",
                          tests: "assert abs(area(1) - 3.14159) < 1e-4\nassert area(0) == 0",
                          setup: "import math")
        let r = try await jail.run(job)
        #expect(r.outcome == .passed && r.passed == 2)
    }

    @Test func failingAssertReportsLineAndValues() async throws {
        let r = try await jail.run(JailJob(program: "def sq(x):\n    return x * 2\nprint('dbg')\n",
                                           tests: "assert sq(2) == 4\n\nassert sq(3) == 9\nassert sq(0) == 0\n"))
        #expect(r.outcome == .failed)
        #expect(r.passed == 2 && r.failed == 1)
        let bad = try #require(r.asserts.first { !$0.passed })
        #expect(bad.line == 3 && bad.index == 1)
        #expect(bad.source == "assert sq(3) == 9")
        #expect(bad.exceptionType == "AssertionError")
        #expect(bad.message == "got 6, expected 9")
        #expect(r.stdout == "dbg\n")
    }

    @Test func exceptionInsideAssert() async throws {
        let r = try await jail.run(JailJob(program: "def f(x):\n    return 1 // x\n", tests: "assert f(1) == 1\nassert f(0) == 0"))
        #expect(r.outcome == .failed)
        #expect(r.asserts[1].exceptionType == "ZeroDivisionError")
        #expect(r.asserts[1].message == "integer division or modulo by zero")
    }

    @Test func syntaxErrorIsAnError() async throws {
        let r = try await jail.run(JailJob(program: "def f(:\n    pass\n", tests: "assert True"))
        #expect(r.outcome == .error)
        #expect(r.syntaxError?.hasPrefix("line 1:") == true)
        #expect(r.total == 0)
    }

    @Test func programRaisingAtImportIsAnError() async throws {
        let r = try await jail.run(JailJob(program: "x = 1 / 0\n", tests: "assert True"))
        #expect(r.outcome == .error)
        #expect(r.stderr.contains("ZeroDivisionError"))
        #expect(r.passed == 0)
    }

    @Test func testsWithoutAssertsAreAnError() async throws {
        let r = try await jail.run(JailJob(program: "x = 1\n", tests: "print(x)\n"))
        #expect(r.outcome == .error)
    }

    @Test func crashBySignalIsReported() async throws {
        let r = try await jail.run(JailJob(program: "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", tests: "assert True"))
        #expect(r.outcome == .crashed)
        #expect(r.signal == SIGSEGV)
    }

    @Test func cpuLimitIsATimeout() async throws {
        let cpuJail = try Jail(limits: JailLimits(wallSeconds: 20, cpuSeconds: 1))
        let r = try await cpuJail.run(JailJob(program: "while True:\n    pass\n", tests: "assert True"))
        #expect(r.outcome == .timeout)
        #expect(r.wallMs < 10_000)
    }

    @Test func degradedModeStillDeniesNetworkAndFork() async throws {
        let job = JailJob(program: attempt("socket.socket()") + "\nnet = r\n" + attempt("os.fork()") + "\n",
                          tests: "assert net == 'PermissionError'\nassert r == 'PermissionError'")
        var layers = jail
        layers.guards = false // the probe uses ctypes
        let (r, status) = try await layers.runDetailed(job, noUserNamespaces: true)
        #expect(r.isolation == .degraded)
        #expect(status.degradedReason.contains("--no-userns"))
        #expect(r.outcome == .passed && r.passed == 2)
    }

    @Test func cancellationKillsTheJailAtOnce() async throws {
        let slow = try Jail(limits: JailLimits(wallSeconds: 60, cpuSeconds: 59))
        let start = ContinuousClock.now
        let task = Task { try await slow.run(JailJob(program: "import time\ntime.sleep(60)\n", tests: "assert True")) }
        try await Task.sleep(for: .milliseconds(500))
        #expect(!jailProcesses(cpuSeconds: 59).isEmpty, "the check below must be able to see a running jail")
        task.cancel()
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(ContinuousClock.now - start < .seconds(5))
        try await Task.sleep(for: .milliseconds(200))
        #expect(jailProcesses(cpuSeconds: 59).isEmpty)
    }

    @Test func probeSeesNetworkDenied() async throws {
        let p = try await jail.probe()
        #expect(p.networkDenied)
        #expect(p.isolation == .namespaces)
        #expect(p.pythonVersion.hasPrefix("3."))
    }

    @Test func anInterpreterOutsideUsrBringsItsPrefix() {
        #expect(Jail.prefixOutsideSystem("/usr/bin/python3.11") == [])
        #expect(Jail.prefixOutsideSystem("/opt/py3/bin/python3") == ["/opt/py3"])
        #expect(Jail.prefixOutsideSystem("/python3") == [])
    }

    @Test func limitsOutsideTheirRangeAreRefusedUpFront() {
        for bad in [JailLimits(wallSeconds: .nan), JailLimits(wallSeconds: .infinity), JailLimits(wallSeconds: -1),
                    JailLimits(cpuSeconds: 0), JailLimits(memoryBytes: 1 << 20), JailLimits(maxOpenFiles: 2)] {
            #expect(throws: JailError.self) { try Jail(limits: bad) }
        }
        #expect(JailError.invalidLimits("wallSeconds must be finite").description.contains("JailLimits"))
    }
}

/// Honest programs must keep their honest verdicts now that the judge, not the
/// program's interpreter, evaluates each assert.
@Suite("Verdicts")
struct VerdictTests {
    struct Case: Sendable, CustomStringConvertible {
        var program: String
        var tests: String
        var setup = ""
        var description: String { tests }
    }

    static let passing: [Case] = [
        Case(program: "def f(l):\n    return list(set(l))\n", tests: "assert set(f([1, 2])) == set([1, 2])"),
        Case(program: "def f(x):\n    return 3.1416\n", tests: "assert math.isclose(f(2), 3.14, rel_tol=0.001)", setup: "import math"),
        Case(program: "def f(x):\n    return True\n", tests: "assert f('a') == True\nassert f('a')"),
        Case(program: "def f(x):\n    return 0\n", tests: "assert not f(3)"),
        Case(program: "def f(x):\n    return None\n", tests: "assert f(1) is None"),
        Case(program: "def f(x):\n    return 3.0\n", tests: "assert f(1) == 3\nassert 3 == f(1)"),
        Case(program: "def f():\n    return [(1, [2, {'a': (3,)}]), {1, 2}, frozenset([3]), b'x', 1 + 2j]\n",
             tests: "assert f() == [(1, [2, {'a': (3,)}]), {1, 2}, frozenset([3]), b'x', 1 + 2j]"),
        Case(program: "def f(n):\n    return 2 ** n\n", tests: "assert f(20000) == 2 ** 20000\nassert f(3) - 1 == 7"),
        Case(program: "def f():\n    return float('nan'), float('inf'), -0.0, '\\ud800'\n",
             tests: "r = f()\nassert r[0] != r[0] and r[1] == float('inf') and str(r[2]) == '-0.0' and r[3] == '\\ud800'"),
        Case(program: "from collections import Counter, OrderedDict, namedtuple\nP = namedtuple('P', 'a b')\n"
                    + "def f():\n    return Counter('aab'), OrderedDict(a=1), P(1, 2)\n",
             tests: "assert f() == ({'a': 2, 'b': 1}, {'a': 1}, (1, 2))"),
        Case(program: "def f(l):\n    l.sort()\n", tests: "x = [3, 1, 2]\nf(x)\nassert x == [1, 2, 3]"),
        Case(program: "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n"
                    + "def total(ps):\n    return sum(p.a for p in ps)\n",
             tests: "assert total([Pair(1, 2), Pair(3, 4)]) == 4\nassert Pair(5, 6).b == 6"),
        Case(program: "def drop(t, kind):\n    return [e for e in t if not isinstance(e, kind)]\n",
             tests: "assert drop((4, 5, 7.7), int) == [7.7]"),
        Case(program: "import sys\ndef size(t):\n    return sys.getsizeof(t)\n", tests: "assert size((1, 2)) == sys.getsizeof((1, 2))"),
        Case(program: "def gen(n):\n    yield from range(n)\n", tests: "assert list(gen(3)) == [0, 1, 2]"),
        Case(program: "def f(x):\n    return x * 2\n", tests: "assert all(f(i) == 2 * i for i in range(5))\nassert [f(i) for i in range(3)] == [0, 2, 4]"),
        Case(program: "class S:\n    def two(self, a):\n        return a * 2\n", tests: "assert S().two(4) == 8"),
        Case(program: "def f(x):\n    return x\n", tests: "assert 0 < f(5) < 10\nassert f(5) in [4, 5]\nassert 5 not in f([1, 2])\nassert f(3) > 2"),
        Case(program: "answer = 42\n", tests: "assert answer == 42"),
        Case(program: "def f():\n    raise ValueError('bad')\n", tests: "try:\n    f()\n    ok = False\nexcept ValueError:\n    ok = True\nassert ok"),
        Case(program: "def f(s):\n    return s.upper()\n", tests: "def check(x):\n    return f(x) == x.upper()\nassert check('abc')"),
    ]

    @Test("honest programs pass", arguments: passing, [JailPath.cold, .warm])
    func honestPasses(_ c: Case, _ path: JailPath) async throws {
        let r = try await jail(on: path).run(JailJob(program: c.program, tests: c.tests, setup: c.setup))
        #expect(r.outcome == .passed && r.failed == 0, "\(r.asserts.map { $0.message ?? "" }) \(r.stderr.suffix(300))")
        #expect(r.path == path)
    }

    @Test func failuresSayWhatTheProgramReturned() async throws {
        let r = try await Jail().run(JailJob(program: "def f(x):\n    return x + 1\n",
                                             tests: "assert f(1) == 3\nassert 5 == f(1)\nassert f(1) < 0\nassert not f(1)\nassert f(1) == 2, 'two'"))
        #expect(r.outcome == .failed && r.passed == 1)
        #expect(r.asserts[0].message == "got 2, expected 3" && r.asserts[0].expected == "3" && r.asserts[0].actual == "2")
        #expect(r.asserts[1].message == "got 2, expected 5")
        #expect(r.asserts[2].message == "got 2, expected < 0")
        #expect(r.asserts[3].message == "assertion is false; f(1) returned 2")
        #expect(r.asserts[4].passed)
    }

    @Test func programObjectsAreNotCompared() async throws {
        let r = try await Jail().run(JailJob(program: "class P:\n    def __eq__(self, o):\n        return True\ndef f():\n    return P()\n",
                                             tests: "assert f() == 1\nassert f() is not None"))
        #expect(r.outcome == .failed && r.passed == 1)
        #expect(r.asserts[0].exceptionType == "UnjudgeableValue")
        #expect(r.asserts[0].message?.contains("returned a P object") == true)
    }

    @Test func setupImportsAreTheTestsToo() async throws {
        let r = try await Jail().run(JailJob(program: "def area(r):\n    return math.pi * r * r\n",
                                             tests: "assert math.isclose(area(1), math.pi)", setup: "import math"))
        #expect(r.outcome == .passed)
    }
}

@Suite("Runner")
struct RunnerTests {
    @Test func cacheAnswersRepeatsAndKeysOnLimits() async throws {
        let runner = JailRunner(jail: try Jail(), parallelism: 2)
        let job = JailJob(program: "x = 2\n", tests: "assert x == 2")
        let a = try await runner.run(job)
        let b = try await runner.run(job)
        #expect(a.outcome == .passed && b.outcome == .passed)
        #expect(await runner.stats == JailStats(runs: 1, cacheHits: 1))
        let other = JailRunner(jail: try Jail(limits: JailLimits(wallSeconds: 5)), parallelism: 1)
        _ = try await other.run(job)
        #expect(await other.stats.runs == 1)
    }

    @Test func boundedParallelRunsAllJobs() async throws {
        let runner = JailRunner(jail: try Jail(), parallelism: 2, cacheCapacity: 2)
        let reports = try await withThrowingTaskGroup(of: TestReport.self) { group in
            for i in 0..<6 {
                group.addTask { try await runner.run(JailJob(program: "v = \(i)\n", tests: "assert v == \(i)\nassert v != \(i)")) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.count == 6)
        #expect(reports.allSatisfy { $0.outcome == .failed && $0.passed == 1 && $0.failed == 1 })
        #expect(await runner.stats.runs == 6)
    }
}

@Suite("Verdicts without a jail")
struct ReportBuilderTests {
    let status = LauncherStatus(isolation: .namespaces, ran: true, exitCode: 0, signal: 0, timedOut: false, outputFlood: false,
                                stdoutTruncated: false, stderrTruncated: false, wallMs: 1, cpuMs: 1, degradedReason: "", setupError: "")

    func build(_ lines: [String], nonce: String = "n1") -> TestReport {
        let out = LauncherOutput(stdout: Data(), stderr: Data(), results: Data(lines.joined(separator: "\n").utf8),
                                 status: Data(), exitStatus: 0)
        return ReportBuilder.build(nonce: nonce, output: out, status: status, limits: .default)
    }

    let plan = #"{"nonce":"n1","kind":"plan","asserts":[{"index":0,"line":1,"source":"assert a"},{"index":1,"line":2,"source":"assert b"}]}"#

    @Test func recordsWithAnotherNonceAreIgnored() {
        let r = build([plan, #"{"nonce":"xx","kind":"assert","index":0,"line":1,"passed":true}"#,
                       #"{"nonce":"xx","kind":"assert","index":1,"line":2,"passed":true}"#, #"{"nonce":"xx","kind":"done"}"#])
        #expect(r.outcome == .failed && r.passed == 0 && r.total == 2)
    }

    @Test func withoutDoneItIsNotAPass() {
        let r = build([plan, #"{"nonce":"n1","kind":"assert","index":0,"line":1,"passed":true}"#,
                       #"{"nonce":"n1","kind":"assert","index":1,"line":2,"passed":true}"#])
        #expect(r.outcome == .failed)
    }

    @Test func duplicateRecordsCannotOverwriteAFailure() {
        let r = build([plan, #"{"nonce":"n1","kind":"assert","index":0,"line":1,"passed":false}"#,
                       #"{"nonce":"n1","kind":"assert","index":0,"line":1,"passed":true}"#,
                       #"{"nonce":"n1","kind":"assert","index":1,"line":2,"passed":true}"#, #"{"nonce":"n1","kind":"done"}"#])
        #expect(r.outcome == .failed && r.passed == 1)
    }

    @Test func allAssertsAndDoneIsAPass() {
        let r = build([plan, #"{"nonce":"n1","kind":"assert","index":0,"line":1,"passed":true}"#,
                       #"{"nonce":"n1","kind":"assert","index":1,"line":2,"passed":true}"#, #"{"nonce":"n1","kind":"done"}"#])
        #expect(r.outcome == .passed && r.passed == 2)
    }

    @Test func aFailedJudgeIsAnErrorNeverAPass() {
        var judgeDied = status
        judgeDied.judgeExitCode = 1
        let out = LauncherOutput(stdout: Data(), stderr: Data("Traceback ...".utf8),
                                 results: Data([plan, #"{"nonce":"n1","kind":"assert","index":0,"line":1,"passed":true}"#].joined(separator: "\n").utf8),
                                 status: Data(), exitStatus: 0)
        let r = ReportBuilder.build(nonce: "n1", output: out, status: judgeDied, limits: .default)
        #expect(r.outcome == .error && r.passed == 1 && r.failed == 1)
        #expect(r.asserts[1].message?.contains("the judge failed") == true)
    }

    @Test func missingLauncherSaysWhatToDo() {
        #expect(throws: JailError.self) { try Jail(launcher: URL(fileURLWithPath: "/nonexistent/qcode-jail")) }
        #expect(JailError.launcherNotFound(searched: []).description.contains("swift build"))
    }
}
