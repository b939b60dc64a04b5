import CodeDomain
import Foundation
import Policy
import RPC
import Sandbox
import Synchronization
import Testing
@testable import Daemon

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Answers every program request with a correct `add`, every line request with `pass`.
struct InstantModel: LanguageModel {
    func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        var usage = Usage()
        usage.calls = 1
        usage.generatedTokens = 4 * request.n
        let text = request.stop == ["\n"] ? "    pass" : "def add(a, b):\n    return a + b\n```"
        let choice = CompletionChoice(text: text, tokenLogprobs: [-0.1, -0.1], finish: .stop, tokens: 4)
        return CompletionResponse(choices: Array(repeating: choice, count: request.n), usage: usage)
    }
}

/// A model whose calls never finish on their own: they wait to be cancelled,
/// and record when they started and when the cancellation reached them.
final class BlockingModel: LanguageModel {
    let started = Mutex<[ContinuousClock.Instant]>([])
    let cancelled = Mutex<[ContinuousClock.Instant]>([])

    func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        started.withLock { $0.append(.now) }
        do {
            try await Task.sleep(for: .seconds(120))
        } catch {
            cancelled.withLock { $0.append(.now) }
            throw error
        }
        throw PolicyError.timedOut("blocking", seconds: 120)
    }

    /// Waits (bounded) until `n` calls have started.
    func waitForCalls(_ n: Int, timeout: Double = 10) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while started.withLock({ $0.count }) < n {
            guard ContinuousClock.now < deadline else { throw TestTimeout("model calls did not start") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits (bounded) until `n` calls have seen their cancellation.
    func waitForCancellations(_ n: Int, timeout: Double = 5) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while cancelled.withLock({ $0.count }) < n {
            guard ContinuousClock.now < deadline else { throw TestTimeout("model calls were not cancelled") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// A model that answers lines slowly, so a Q* search makes a few expansions and reports progress.
struct SlowLineModel: LanguageModel {
    func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        try await Task.sleep(for: .milliseconds(20))
        var usage = Usage()
        usage.calls = 1
        usage.generatedTokens = 2 * request.n
        let choices = (0..<request.n).map { i in
            CompletionChoice(text: "    x\(i) = \(i)", tokenLogprobs: [-0.1 * Double(i + 1)], finish: .stop, tokens: 2)
        }
        return CompletionResponse(choices: choices, usage: usage)
    }
}

struct TestTimeout: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Passes programs containing `return a + b`.
struct ScriptedVerifier: ProgramVerifier {
    func run(_ job: JailJob) async throws -> TestReport {
        let pass = job.program.contains("return a + b")
        let json = #"{"outcome":"\#(pass ? "passed" : "failed")","passed":\#(pass ? 2 : 0),"failed":\#(pass ? 0 : 2),"total":2,"asserts":[{"index":0,"line":1,"source":"assert add(1, 2) == 3","passed":\#(pass)},{"index":1,"line":2,"source":"assert add(0, 0) == 0","passed":\#(pass)}],"stdout":"","stderr":"","wallMs":1,"cpuMs":1,"isolation":"namespaces"}"#
        return try JSONDecoder().decode(TestReport.self, from: Data(json.utf8))
    }
}

let addTask = TaskSpec(CodeTask(id: "add", text: "Write a function to add two numbers.",
                                tests: ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]))

func makeServer(_ model: any LanguageModel = InstantModel(), settings: DaemonSettings = DaemonSettings(),
                verifier: @escaping @Sendable (Double) throws -> any ProgramVerifier = { _ in ScriptedVerifier() }) -> DaemonServer {
    DaemonServer(components: Components(model: model, verifier: verifier), settings: settings)
}

/// A fresh socket path under /tmp (short: sun_path holds 107 bytes).
func tempSocketPath() -> String {
    let dir = "/tmp/qcode-tests/\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    return dir + "/qcode.sock"
}

extension RPCClient {
    @discardableResult
    func initialize() async throws -> JSONValue {
        try await request("initialize", ["process_id": .int(Int(getpid())), "client_info": ["name": "tests"]])
    }

    func solve(_ method: String = "greedy", options: JSONValue = [:], id: RequestID? = nil) async throws -> JSONValue {
        try await request("qcode/solve", ["task": try JSONValue.encoding(addTask), "method": .string(method), "options": options], id: id)
    }
}

/// The error a call threw, as a ResponseError (fails the test otherwise).
func responseError(_ body: () async throws -> Any) async -> ResponseError? {
    do {
        _ = try await body()
        Issue.record("expected an error response")
        return nil
    } catch let e as ResponseError {
        return e
    } catch {
        Issue.record("expected a ResponseError, got \(error)")
        return nil
    }
}

/// Races `body` against a deadline so no test can hang.
func within<T: Sendable>(_ seconds: Double, _ what: String = "operation", _ body: @escaping @Sendable () async throws -> T) async throws -> T {
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

/// A raw socket for sending bytes the client never would.
struct RawPeer {
    let connection: Connection
    let bodies: AsyncThrowingStream<Data, any Error>

    init(_ fd: Int32) {
        connection = Connection(fd: fd)
        bodies = connection.bodies()
    }

    /// The next message, or nil at end of stream.
    func next(timeout: Double = 5) async throws -> Message? {
        let stream = bodies
        return try await within(timeout, "reading a message") { () -> Message?? in
            var it = stream.makeAsyncIterator()
            guard let body = try await it.next() else { return .some(nil) }
            return .some(try Message.decode(body).get())
        } ?? nil
    }
}
