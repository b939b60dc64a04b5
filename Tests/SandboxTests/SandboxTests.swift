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
        let (r, status) = try await jail.runDetailed(job, noUserNamespaces: true)
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

    @Test func anExtraHiddenDirectoryIsEmptyInside() async throws {
        // Not under /tmp (a fresh tmpfs inside) nor a directory the launcher always hides.
        let dir = "/var/qcode-hide-test-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "secret".write(toFile: dir + "/secret.txt", atomically: true, encoding: .utf8)
        let probe = JailJob(program: "import os\nseen = os.listdir('\(dir)') if os.path.isdir('\(dir)') else []\n",
                            tests: "assert seen == []")
        let open = try Jail(hide: [])
        #expect(try await open.run(probe).outcome == .failed)
        let hiding = try Jail(hide: [dir])
        #expect(try await hiding.run(probe).outcome == .passed)
    }

    @Test func systemDirectoriesAreNeverHidden() {
        let kept = Jail.safeToHide(["/", "/usr", "/usr/local/src", "/", "/srv/repo/", "/srv/repo", "/etc/x", "/data/../data/x"],
                                   python: "/usr/bin/python3")
        #expect(kept == ["/srv/repo", "/data/x"])
        #expect(Jail.safeToHide(["/opt/py"], python: "/opt/py/bin/python3") == [])
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

    @Test func missingLauncherSaysWhatToDo() {
        #expect(throws: JailError.self) { try Jail(launcher: URL(fileURLWithPath: "/nonexistent/qcode-jail")) }
        #expect(JailError.launcherNotFound(searched: []).description.contains("swift build"))
    }
}
