import Basics
import CodeDomain
import Foundation
import Policy
import QStar
import Sandbox
import Synchronization

// MARK: - Paths

/// The checkout this test run belongs to (wherever it was cloned).
public let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
/// `../shared/data/mbpp` beside the checkout.
public let mbppDir = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data/mbpp")
/// The build products folder (`.build/debug`): the jail launcher and the qcode binary live there.
public var buildProducts: URL {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).map(URL.init(fileURLWithPath:))
    return exe?.deletingLastPathComponent() ?? repoRoot.appendingPathComponent(".build/debug")
}

/// A fresh socket path under /tmp (short: sun_path holds 107 bytes).
public func tempSocketPath() -> String {
    "/tmp/qcode-tests/\(getpid())-\(UInt32.random(in: 0...UInt32.max))/qcode.sock"
}

/// A fresh empty directory under the system temp folder.
public func tempDirectory(_ name: String = "qcode-test") throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

// MARK: - Prerequisites

/// Something a test needs from the machine. Missing locally, the test is
/// skipped (and shows as skipped); missing in CI (`CI=true`), the test runs
/// and fails with what to do, so a green CI run never hides a skipped proof.
public struct Prerequisite: Sendable {
    public let name: String
    public let isAvailable: Bool
    public let fix: String

    public static var inCI: Bool {
        let v = ProcessInfo.processInfo.environment["CI"]?.lowercased() ?? ""
        return v == "true" || v == "1" || v == "yes"
    }

    /// For `@Test(.enabled(if:))`: run when available, and always in CI.
    public var shouldRun: Bool { isAvailable || Self.inCI }

    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    public func require() throws {
        guard isAvailable else { throw Missing(description: "missing prerequisite: \(name); fix: \(fix)") }
    }

    /// The small model the real-model tests use (fast in CI), and a llama-server to run it.
    public static let smallModel = Prerequisite(
        name: "llama-server and the 0.5B model in \(QCodeCache.root.path)",
        isAvailable: FileManager.default.fileExists(atPath: EmbeddedModel.small.defaultPath.path)
            && FileManager.default.isExecutableFile(atPath: QCodeCache.serverBinary.path),
        fix: "run scripts/bootstrap")

    /// Debian's Neovim (0.7.2 on Debian 12), for the editor tests.
    public static let neovim = Prerequisite(
        name: "Neovim (nvim)", isAvailable: FileManager.default.isExecutableFile(atPath: "/usr/bin/nvim"),
        fix: "run scripts/bootstrap (it installs Debian's neovim)")

    /// Current Neovim, for the editor tests' second editor.
    public static let neovim011 = Prerequisite(
        name: "Neovim 0.11 in \(QCodeCache.root.path)/nvim-0.11",
        isAvailable: FileManager.default.isExecutableFile(atPath: QCodeCache.root.appendingPathComponent("nvim-0.11/bin/nvim").path),
        fix: "run scripts/bootstrap --test-editors")

    public static let mbpp = Prerequisite(
        name: "MBPP data in \(mbppDir.path)",
        isAvailable: FileManager.default.fileExists(atPath: mbppDir.appendingPathComponent("validation.jsonl").path),
        fix: "place the MBPP JSONL files in ../shared/data/mbpp beside the checkout")
}

// MARK: - Waiting without wall-clock assertions

public struct TestTimeout: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Races `body` against a generous deadline so no test can hang; the
/// deadline is a safety net, never the property under test.
public func within<T: Sendable>(_ seconds: Double, _ what: String = "operation",
                                _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask { try await Task.sleep(for: .seconds(seconds)); return nil }
        guard let first = try await group.next(), let value = first else {
            group.cancelAll()
            throw TestTimeout("\(what) took longer than \(seconds) s")
        }
        group.cancelAll()
        return value
    }
}

/// Waits until `condition` holds (checked every 10 ms), failing after `seconds`.
public func eventually(_ what: String, within seconds: Double = 30, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestTimeout("\(what): not within \(seconds) s") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// Runs a program to completion off the cooperative pool; stdout and stderr together.
public func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                currentDirectory: URL? = nil) async throws -> (status: Int32, output: String) {
    try await withCheckedThrowingContinuation { cont in
        Thread.detachNewThread {
            do {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: executable)
                p.arguments = arguments
                if let environment { p.environment = environment }
                if let currentDirectory { p.currentDirectoryURL = currentDirectory }
                let pipe = Pipe()
                p.standardOutput = pipe
                p.standardError = pipe
                p.standardInput = FileHandle.nullDevice
                try p.run()
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                cont.resume(returning: (p.terminationStatus, String(decoding: data, as: UTF8.self)))
            } catch {
                cont.resume(throwing: error)
            }
        }
    }
}

public func runPython(_ arguments: [String]) async throws -> (status: Int32, output: String) {
    try await run("/usr/bin/python3", arguments)
}

// MARK: - Tasks

public let addTask = CodeTask(id: "add", text: "Write a function to add two numbers.",
                              tests: ["assert add(1, 2) == 3", "assert add(0, 0) == 0"])

// MARK: - Scripted models

/// One candidate line or chunk with a flat log-probability.
public func line(_ text: String, _ logprob: Double = -0.1, finish: FinishReason = .stop) -> CompletionChoice {
    CompletionChoice(text: text, tokenLogprobs: [logprob, logprob], finish: finish, tokens: 2)
}

/// A language model that answers from a script keyed by the code so far, and
/// records every request it saw.
public final class ScriptedModel: LanguageModel {
    /// Code so far (lines joined by "\n") → the choices for the next line.
    let lines: [String: [CompletionChoice]]
    let programs: [CompletionChoice]
    /// Code so far, exactly → the next chunks (token steps).
    let chunks: [String: [CompletionChoice]]
    public let requests = Mutex<[CompletionRequest]>([])
    /// Whole-program requests served so far: the next one starts at this index of `programs` (cycling).
    private let served = Mutex(0)
    public var prompts: [String] { requests.withLock { $0.map(\.prompt) } }

    public init(lines: [String: [CompletionChoice]] = [:], programs: [CompletionChoice] = [],
                chunks: [String: [CompletionChoice]] = [:]) {
        self.lines = lines
        self.programs = programs
        self.chunks = chunks
    }

    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        requests.withLock { $0.append(request) }
        let code = request.prompt.components(separatedBy: "```python\n").last ?? ""
        let choices: [CompletionChoice]
        if !chunks.isEmpty {
            choices = Array((chunks[code] ?? []).prefix(request.n))
        } else if request.stop == ["\n"] {
            choices = Array((lines[String(code.dropLast(code.hasSuffix("\n") ? 1 : 0))] ?? []).prefix(request.n))
        } else if programs.isEmpty {
            choices = []
        } else {
            let first = served.withLock { i in defer { i += request.n }; return i }
            choices = (0..<request.n).map { programs[(first + $0) % programs.count] }
        }
        return CompletionResponse(choices: choices, cost: Cost(llmCalls: 1, generatedTokens: choices.reduce(0) { $0 + $1.tokens }))
    }
}

/// Answers every program request with a correct `add`, every line request with `pass`.
public struct InstantModel: LanguageModel {
    public init() {}
    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        let text = request.stop == ["\n"] ? "    pass" : "def add(a, b):\n    return a + b\n```"
        let choice = CompletionChoice(text: text, tokenLogprobs: [-0.1, -0.1], finish: .stop, tokens: 4)
        return CompletionResponse(choices: Array(repeating: choice, count: request.n),
                                  cost: Cost(llmCalls: 1, generatedTokens: 4 * request.n))
    }
}

/// A model whose calls never finish on their own: they wait to be cancelled,
/// and count when they started and when the cancellation reached them.
public final class BlockingModel: LanguageModel {
    public let started = Atomic<Int>(0)
    public let cancelled = Atomic<Int>(0)
    public init() {}

    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        started.add(1, ordering: .sequentiallyConsistent)
        do {
            try await Task.sleep(for: .seconds(600))
        } catch {
            cancelled.add(1, ordering: .sequentiallyConsistent)
            throw error
        }
        throw PolicyError.timedOut("blocking", seconds: 600)
    }

    public func waitForCalls(_ n: Int) async throws {
        try await eventually("\(n) model calls to start") { started.load(ordering: .sequentiallyConsistent) >= n }
    }

    public func waitForCancellations(_ n: Int) async throws {
        try await eventually("\(n) model calls to see their cancellation") { cancelled.load(ordering: .sequentiallyConsistent) >= n }
    }
}

/// A model that answers lines with distinct statements, so a Q* search makes several expansions and reports progress.
public struct SlowLineModel: LanguageModel {
    public init() {}
    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        try await Task.sleep(for: .milliseconds(5))
        let choices = (0..<request.n).map { i in
            CompletionChoice(text: "    x\(i) = \(i)", tokenLogprobs: [-0.1 * Double(i + 1)], finish: .stop, tokens: 2)
        }
        return CompletionResponse(choices: choices, cost: Cost(llmCalls: 1, generatedTokens: 2 * request.n))
    }
}

/// A model for code paths that must not call one.
public struct NoModel: LanguageModel {
    public init() {}
    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        CompletionResponse(choices: [], cost: Cost())
    }
}

// MARK: - Scripted verifiers

/// Records every job and passes programs containing `marker`, with one assert
/// result per test line of the job (so evidence can be checked).
public final class ScriptedVerifier: ProgramVerifier {
    public let marker: String
    public let jobs = Mutex<[JailJob]>([])
    public init(passing marker: String = "return a + b") { self.marker = marker }

    public func run(_ job: JailJob) async throws -> TestReport {
        jobs.withLock { $0.append(job) }
        let pass = job.program.contains(marker)
        let tests = job.tests.split(separator: "\n").map(String.init)
        let asserts: [[String: Any]] = tests.enumerated().map { i, t in
            var a: [String: Any] = ["index": i, "line": i + 1, "source": t, "passed": pass]
            if !pass { a["exceptionType"] = "AssertionError"; a["message"] = "got 0, expected 3" }
            return a
        }
        let report: [String: Any] = [
            "outcome": pass ? "passed" : "failed", "passed": pass ? tests.count : 0, "failed": pass ? 0 : tests.count,
            "total": tests.count, "asserts": asserts, "stdout": "", "stderr": "", "wallMs": 1, "cpuMs": 1,
            "isolation": "namespaces",
        ]
        return try JSONDecoder().decode(TestReport.self, from: try JSONSerialization.data(withJSONObject: report))
    }
}

/// A verifier for code paths that must not run one.
public struct NoVerifier: ProgramVerifier {
    public init() {}
    public func run(_ job: JailJob) async throws -> TestReport { throw CancellationError() }
}

// MARK: - A fake llama-server

/// Drives `Tests/Fixtures/fake-llama-server`: its behaviour is a JSON script
/// passed as the "model" file, re-read on every request, and it logs every
/// request it receives, so tests can wait for a request and kill the server
/// in the middle of it.
public struct FakeLlamaServer: Sendable {
    public static let binary = repoRoot.appendingPathComponent("Tests/Fixtures/fake-llama-server")
    public let script: URL
    public let log: URL

    public init(program: String = "def add(a, b):\n    return a + b\n", stall: Bool = false) throws {
        let dir = try tempDirectory("fake-llama")
        script = dir.appendingPathComponent("script.json")
        log = dir.appendingPathComponent("requests.log")
        try set(program: program, stall: stall)
    }

    public func set(program: String = "def add(a, b):\n    return a + b\n", stall: Bool = false, status: Int = 200,
                    body: String? = nil) throws {
        var s: [String: Any] = ["program": program, "line": "    pass", "log": log.path, "stall": stall, "status": status]
        if let body { s["body"] = body }
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: s), to: script)
    }

    /// The pids that served each request so far, in order.
    public var requestPids: [Int32] {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["pid"] as? Int
        }.map { Int32($0) }
    }

    /// The server logged a SIGTERM: it was stopped gracefully, not killed.
    public var terminatedGracefully: Bool {
        ((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains(#""event": "terminated""#)
    }

    public func waitForRequests(_ n: Int) async throws {
        try await eventually("\(n) request(s) at the fake llama-server") { requestPids.count >= n }
    }
}

/// A fake llama-server listening on its own port: an `--endpoint` for the CLI.
public struct FakeEndpoint {
    public let fake: FakeLlamaServer
    public let process: Process
    public let url: String

    public init(program: String = "def add(a, b):\n    return a + b\n") async throws {
        fake = try FakeLlamaServer(program: program)
        // A random port may be taken (another test's server, a benchmark): a fake that
        // cannot bind exits at once, and then another port is tried.
        for _ in 1...8 {
            let port = Int.random(in: 20000...60000)
            let process = Process()
            process.executableURL = FakeLlamaServer.binary
            process.arguments = ["-m", fake.script.path, "--host", "127.0.0.1", "--port", String(port)]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let url = "http://127.0.0.1:\(port)"
            let health = url + "/health"
            try await eventually("the fake endpoint to listen on \(port) or exit") {
                guard process.isRunning else { return true }
                return (try? await run("/usr/bin/curl", ["-sf", health]).status) == 0
            }
            if process.isRunning {
                self.process = process
                self.url = url
                return
            }
        }
        throw TestTimeout("the fake endpoint: no free port after 8 tries")
    }

    /// SIGKILL: the test process may run with SIGTERM ignored (a command under test sets that
    /// while its embedded server runs), and children inherit it, so `terminate()` left fakes behind.
    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// `max_tokens` of each request it received, in order.
    public var maxTokens: [Int] {
        guard let text = try? String(contentsOf: fake.log, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["max_tokens"] as? Int
        }
    }
}

// MARK: - Options

extension SolveOptions {
    /// Every field set to something other than its default: the fixture of the
    /// tests that check an option reaches the search unchanged.
    public static var everyFieldChanged: SolveOptions {
        var o = SolveOptions()
        o.method = "best-of-n"
        o.value = ValueChoice(.zero)
        o.search.k = 7
        o.search.lambda = 0.25
        o.search.aggregation = .sum
        o.search.budget = Budget(maxExpansions: 9, maxGeneratedTokens: 321, maxSeconds: 42)
        o.search.seed = 99
        o.search.samples = 3
        o.search.temperature = 0.3
        o.search.maxDepth = 17
        o.search.continuations = false  // so step_tokens applies
        o.search.greedyFirst = !o.search.greedyFirst
        o.search.branchSamples = 3
        o.search.uncertainty = 2
        o.search.rolloutWeight = 0.9
        o.search.costWeight = 0.75
        o.search.branching = o.search.branching == .step ? .episode : .step
        o.search.revise = 0.125
        o.search.dedup = true
        o.search.select = 3
        o.search.rewardSamples = 5
        o.search.exploration = 0.7
        o.search.maxChildren = 2
        o.search.placeholderRoot = true
        o.steps = o.steps == .code ? .lines : .code
        o.stepTokens = 8
        o.maxLineTokens = 33
        o.maxProgramTokens = 222
        o.timeout = 4
        o.framings = [.examples, .instruct]
        return o
    }
}
