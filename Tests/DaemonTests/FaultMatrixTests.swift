import Basics
import CodeDomain
import Foundation
import Policy
import RPC
import Sandbox
import Testing
import TestSupport
@testable import Daemon

// The fault matrix of docs/faults.md, one test per row: a daemon built from a
// configuration as `qcode serve` builds it (real HTTP client over libcurl, real
// jail), facing a completions endpoint or a jail that misbehaves on purpose.
// Each row checks what the user sees (the message, word for word where it
// matters), that `qcode/status` shows the last LLM error, and that the daemon
// keeps serving: a solve against a healthy endpoint then passes.

/// llama.cpp's native answer with a correct `add`.
let goodCompletion = #"{"content":"def add(a, b):\n    return a + b\n","stop_type":"eos","tokens_predicted":9,"#
    + #""tokens_evaluated":10,"tokens_cached":0,"completion_probabilities":[{"token":"def","logprob":-0.1}],"#
    + #""timings":{"prompt_n":10,"cache_n":0}}"#

/// A daemon whose LLM is a `ScriptedServer`, reached through one in-process client.
struct EndpointDaemon {
    let endpoint: ScriptedServer
    let server: DaemonServer
    let client: RPCClient

    init(_ replies: [ScriptedServer.Reply], otherwise: ScriptedServer.Reply, api: String = "llama", llmTimeout: Double = 30) async throws {
        endpoint = try ScriptedServer(replies, otherwise: otherwise)
        let config = try Configuration.resolve(
            flags: [.endpoint: endpoint.url.absoluteString, .api: api, .llmTimeout: String(llmTimeout)],
            environment: [:], file: nil).values
        server = DaemonServer(components: Components.make(config), settings: DaemonSettings(config))
        client = try server.connectInProcess()
        try await client.initialize()
    }

    /// The solve's answer, or the error it ended with.
    func solve(_ method: String = "greedy", options: [String: JSONValue] = [:]) async throws -> Result<JSONValue, ResponseError> {
        do {
            return .success(try await within(120, "the solve") { try await client.solve(method, options: options) })
        } catch let e as ResponseError {
            return .failure(e)
        }
    }

    func solveError(_ method: String = "greedy", options: [String: JSONValue] = [:]) async throws -> ResponseError? {
        guard case .failure(let e) = try await solve(method, options: options) else {
            Issue.record("the solve succeeded against a faulty endpoint")
            return nil
        }
        return e
    }

    /// `llm.last_error` of `qcode/status`.
    func lastError() async throws -> String? {
        try await client.request("qcode/status")["llm"]?["last_error"]?.stringValue
    }

    /// The endpoint heals; the same daemon, on the same connection, solves and checks again.
    func keepsServing() async throws {
        endpoint.script([], otherwise: .init(body: goodCompletion))
        guard case .success(let result) = try await solve() else { Issue.record("no solve after the fault"); return }
        #expect(result["passed"] == 2, "\(result)")
        #expect(try await client.request("qcode/check", ["source": "x = 1\n"])["verdict"] == "valid")
    }

    func stop() async {
        client.close()
        await server.stop()
        endpoint.close()
    }
}

@Suite(.serialized) struct EndpointFaultTests {
    @Test func hangingEndpointEndsTheSolveAtItsTimeout() async throws {
        let d = try await EndpointDaemon([], otherwise: .fault(.hang), llmTimeout: 1)
        // While the solve waits on the hung server, the daemon answers others.
        let solve = Task { try await d.solveError() }
        try await eventually("the request to reach the endpoint") { d.endpoint.requestCount == 1 }
        let other = try d.server.connectInProcess()
        try await other.initialize()
        #expect(try await other.request("qcode/status")["solves_running"] == 1)
        other.close()
        let error = try await solve.value
        #expect(error?.code == ErrorCode.internalError)
        #expect(error?.message == "the LLM server at \(d.endpoint.url.absoluteString) did not answer within 1 s (llm_timeout): "
            + "it is hung or overloaded; check it, raise --llm-timeout, or lower -k")
        // One request, abandoned: a timeout is not retried, and the connection was closed, not leaked.
        #expect(d.endpoint.requestCount == 1)
        try await eventually("the endpoint to see the client hang up") { d.endpoint.connectionsClosedEarly.load(ordering: .relaxed) == 1 }
        #expect(try await d.lastError()?.contains("did not answer within 1 s") == true)
        try await d.keepsServing()
        await d.stop()
    }

    @Test func endpointAnsweringAByteASecondEndsTheSolveAtItsTimeout() async throws {
        let d = try await EndpointDaemon([], otherwise: .init(body: goodCompletion, fault: .drip(interval: 1)), llmTimeout: 2)
        let error = try await d.solveError()
        #expect(error?.message.contains("did not answer within 2 s (llm_timeout)") == true, "\(String(describing: error))")
        #expect(d.endpoint.requestCount == 1)
        try await eventually("the endpoint to see the client hang up") { d.endpoint.connectionsClosedEarly.load(ordering: .relaxed) == 1 }
        #expect(try await d.lastError()?.contains("did not answer within 2 s") == true)
        try await d.keepsServing()
        await d.stop()
    }

    @Test func http500IsRetriedThenReportedWithTheServersMessage() async throws {
        let d = try await EndpointDaemon([], otherwise: .init(status: 500, body: #"{"error":{"message":"boom"}}"#))
        let error = try await d.solveError()
        #expect(error?.code == ErrorCode.internalError)
        #expect(error?.message == "the LLM server answered HTTP 500 (boom), also after qcode's retries: it failed on this request; "
            + "see the server's log")
        #expect(d.endpoint.requestCount == 4)  // the call and three retries
        #expect(try await d.lastError()?.contains("HTTP 500 (boom)") == true)
        try await d.keepsServing()
        await d.stop()
    }

    @Test func http503SaysTheServerIsStillLoading() async throws {
        let d = try await EndpointDaemon([], otherwise: .init(status: 503, body: #"{"error":{"message":"Loading model"}}"#))
        let error = try await d.solveError()
        #expect(error?.message == "the LLM server answered HTTP 503 (Loading model), also after qcode's retries: it is still "
            + "loading its model or is overloaded; retry once its /health answers 200")
        #expect(try await d.lastError()?.contains("HTTP 503") == true)
        try await d.keepsServing()
        await d.stop()
    }

    @Test func transientErrorsAreRetriedIntoASuccess() async throws {
        let d = try await EndpointDaemon([.init(status: 503, body: #"{"error":{"message":"Loading model"}}"#),
                                          .fault(.reset), .init(status: 500, body: "oops")],
                                         otherwise: .init(body: goodCompletion))
        guard case .success(let result) = try await d.solve() else { Issue.record("no retried success"); return }
        #expect(result["passed"] == 2)
        #expect(d.endpoint.requestCount == 4)
        #expect(try await d.lastError() == nil)  // a retried success is no error
        await d.stop()
    }

    @Test func truncatedBodySaysTheConnectionBroke() async throws {
        let d = try await EndpointDaemon([], otherwise: .init(body: goodCompletion, truncateAt: 20))
        let error = try await d.solveError()
        #expect(error?.message == "the LLM server at \(d.endpoint.url.absoluteString) broke the connection before a whole answer "
            + "(Transferred a partial file), 4 time(s): it may be crashing or restarting; check its log, then retry")
        #expect(try await d.lastError()?.contains("broke the connection") == true)
        try await d.keepsServing()
        await d.stop()
    }

    @Test func connectionResetSaysTheConnectionBroke() async throws {
        let d = try await EndpointDaemon([], otherwise: .fault(.reset))
        let error = try await d.solveError()
        #expect(error?.message.hasPrefix("the LLM server at \(d.endpoint.url.absoluteString) broke the connection before a whole answer (") == true,
                "\(String(describing: error))")
        #expect(error?.message.contains("4 time(s)") == true)
        #expect(d.endpoint.requestCount == 4)
        #expect(try await d.lastError()?.contains("broke the connection") == true)
        try await d.keepsServing()
        await d.stop()
    }

    @Test func nonJSONBodyNamesWhatCameBack() async throws {
        let d = try await EndpointDaemon([], otherwise: .init(body: "<html>502 Bad Gateway</html>"))
        let error = try await d.solveError()
        #expect(error?.message == "the LLM server sent a response qcode cannot read (not JSON: <html>502 Bad Gateway</html>): "
            + "check that the endpoint is an OpenAI-compatible or llama.cpp server")
        #expect(d.endpoint.requestCount == 1)  // an answer that cannot be read is not asked again
        #expect(try await d.lastError()?.contains("not JSON") == true)
        try await d.keepsServing()
        await d.stop()
    }

    @Test func fewerChoicesThanAskedAreUsedAndNoneIsAnError() async throws {
        // best-of-n asks for 4 programs in one request; one comes back, and it passes.
        let d = try await EndpointDaemon([.init(body: goodCompletion)], otherwise: .init(body: "[]"))
        guard case .success(let result) = try await d.solve("best-of-n", options: ["samples": 4, "branch_samples": 4]) else {
            Issue.record("no solve from one choice of four"); return
        }
        #expect(result["passed"] == 2)
        #expect(d.endpoint.requests.withLock { $0[0] }.contains(#""n":4"#))
        // None at all is an error that says so.
        let error = try await d.solveError("best-of-n", options: ["samples": 4, "branch_samples": 4])
        #expect(error?.message == "the LLM server sent a response qcode cannot read (an answer without completions, though 4 were "
            + "asked for): check that the endpoint is an OpenAI-compatible or llama.cpp server")
        #expect(try await d.lastError()?.contains("without completions") == true)
        try await d.keepsServing()
        await d.stop()
    }

    @Test func noLogprobsStillSolvesAndTheTokenBudgetStillHolds() async throws {
        // OpenAI-style choices without `logprobs` (and no `usage`): tokens are estimated from the text.
        let program = #"{"choices":[{"index":0,"text":"def add(a, b):\n    return a + b\n","finish_reason":"stop"}]}"#
        let d = try await EndpointDaemon([.init(body: program)], otherwise: .init(body: #"{"choices":[{"index":0,"text":"x = 1","finish_reason":"length"}]}"#),
                                         api: "openai")
        guard case .success(let greedy) = try await d.solve() else { Issue.record("no solve without logprobs"); return }
        #expect(greedy["passed"] == 2)
        #expect(greedy["statistics"]?["cost"]?["generated_tokens"]?.intValue ?? 0 > 0)
        // K-step Q* on a line model that never finishes: the token budget stops it, as with logprobs.
        guard case .success(let qstar) = try await d.solve("qstar", options: ["k": 2, "budget_tokens": 40, "continuations": false]) else {
            Issue.record("the search failed"); return
        }
        #expect(qstar["statistics"]?["stop"] == "tokens", "\(qstar)")
        #expect(qstar["statistics"]?["cost"]?["generated_tokens"]?.intValue ?? 0 >= 40)
        #expect(try await d.lastError() == nil)
        await d.stop()
    }
}

// MARK: - The jail

@Suite(.serialized) struct JailFaultTests {
    static func daemon(launcher: URL) -> DaemonServer {
        makeServer(verifier: { timeout in
            var limits = JailLimits.default
            limits.wallSeconds = timeout
            return try Jail(launcher: launcher, limits: limits)
        })
    }

    static func test(_ client: RPCClient, _ program: String = "def add(a, b):\n    return a + b\n") async throws -> JSONValue {
        try await within(60, "qcode/test") {
            try await client.request("qcode/test", ["program": .string(program), "tests": "assert add(1, 2) == 3\n"])
        }
    }

    @Test func missingLauncherSaysHowToBuildIt() async throws {
        let server = Self.daemon(launcher: URL(fileURLWithPath: "/nonexistent/qcode-jail"))
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        let error = await responseError { try await Self.test(client) }
        #expect(error?.code == ErrorCode.internalError)
        #expect(error?.message == "qcode-jail launcher not found (looked in: /nonexistent/qcode-jail). Run `swift build --product "
            + "qcode-jail` (or scripts/bootstrap, then `swift build`), or set QCODE_JAIL to the launcher's path.")
        let solve = await responseError { try await within(60) { try await client.solve("greedy") } }
        #expect(solve?.message.contains("qcode-jail launcher not found") == true)
        #expect(try await client.request("qcode/check", ["source": "x = 1\n"])["verdict"] == "valid")
        await server.stop()
    }

    /// A rebuild (or `make clean`) under a running daemon: the launcher it
    /// set up with is gone; once it is back, the same daemon uses it again.
    @Test func launcherDeletedUnderARunningDaemon() async throws {
        let dir = try tempDirectory("jail-copy")
        let copy = dir.appendingPathComponent("qcode-jail")
        let original = buildProducts.appendingPathComponent("qcode-jail")
        try FileManager.default.copyItem(at: original, to: copy)
        let server = Self.daemon(launcher: copy)
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        #expect(try await Self.test(client)["outcome"] == "passed")
        try FileManager.default.removeItem(at: copy)
        let error = await responseError { try await Self.test(client, "def add(a, b):\n    return b + a\n") }
        #expect(error?.message.hasPrefix("qcode-jail launcher not found (looked in: \(copy.path))") == true, "\(String(describing: error))")
        try FileManager.default.copyItem(at: original, to: copy)
        #expect(try await Self.test(client, "def add(a, b):\n    return b + a\n")["outcome"] == "passed")
        await server.stop()
    }

    @Test func launcherFailingWithoutAResultSaysWhatItSaid() async throws {
        let dir = try tempDirectory("jail-broken")
        let broken = dir.appendingPathComponent("qcode-jail")
        try "#!/bin/sh\necho 'qcode-jail: cannot mount /proc' >&2\nexit 1\n".write(to: broken, atomically: true, encoding: .utf8)
        chmod(broken.path, 0o755)
        let server = Self.daemon(launcher: broken)
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        let error = await responseError { try await Self.test(client) }
        #expect(error?.message == "the jail launcher ended before it reported a result (exited with status 1: qcode-jail: cannot "
            + "mount /proc); the program was not judged. Retry; if it happens again, run `qcode doctor` (was the launcher "
            + "killed, or the machine out of memory?).")
        #expect(try await client.request("qcode/status")["version"] == .string(qcodeVersion))
        await server.stop()
    }

    @Test func launcherKilledMidRunSaysSoAndLeavesNothing() async throws {
        let server = Self.daemon(launcher: buildProducts.appendingPathComponent("qcode-jail"))
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        #expect(try await Self.test(client)["outcome"] == "passed")  // the harness is compiled: the next launcher is the run
        let before = jailLaunchers()
        let run = Task { try await Self.test(client, "import time\ntime.sleep(30)\ndef add(a, b):\n    return a + b\n") }
        var launcher: Int32 = 0
        // Running: the launcher's init has started the program (and the judge).
        try await eventually("the program to run in the jail") {
            launcher = jailLaunchers().subtracting(before).first ?? 0
            return launcher != 0 && children(of: launcher).contains { !children(of: $0).isEmpty }
        }
        kill(launcher, SIGKILL)
        let error = await responseError { try await run.value }
        #expect(error?.message.hasPrefix("the jail launcher ended before it reported a result (killed by signal 9") == true,
                "\(String(describing: error))")
        #expect(error?.message.contains("the program was not judged. Retry;") == true, "\(String(describing: error))")
        try await eventually("no launcher left") { jailLaunchers().subtracting(before).isEmpty }
        // The same daemon judges the next program.
        #expect(try await Self.test(client, "def add(a, b):\n    return b + a\n")["outcome"] == "passed")
        await server.stop()
    }
}

/// Live (not zombie) children of `pid`.
func children(of pid: Int32) -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
        guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8) else { return nil }
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        return fields.count > 2 && Int32(fields[1]) == pid && fields[0] != "Z" ? child : nil
    }
}

// MARK: - The embedded server's stop

@Suite struct EmbeddedServerStopTests {
    /// `qcode stop` reaches llama-server as SIGTERM through its parent tie, so
    /// it exits cleanly at once instead of being SIGKILLed seconds later.
    @Test func stoppingTheDaemonStopsLlamaServerGracefully() async throws {
        let fake = try FakeLlamaServer()
        let config = try Configuration.resolve(flags: [.llamaServer: FakeLlamaServer.binary.path, .modelPath: fake.script.path],
                                               environment: [:], file: nil).values
        let server = DaemonServer(components: Components.make(config), settings: DaemonSettings(config))
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        #expect(try await within(120, "the solve") { try await client.solve("greedy") }["passed"] == 2)
        let pid = fake.requestPids[0]
        await server.stop()
        #expect(fake.terminatedGracefully)
        #expect(kill(pid, 0) != 0)
    }
}
