import Basics
import CodeDomain
import Foundation
import Policy
import QStar
import RPC
import Sandbox
import Synchronization
import Testing
import TestSupport
@testable import Daemon

@Suite struct LifecycleTests {
    @Test func lifecycleOrderIsEnforcedPerSession() async throws {
        let server = makeServer()
        let client = try server.connectInProcess()
        defer { client.close() }

        let early = await responseError { try await client.request("qcode/status") }
        #expect(early?.code == ErrorCode.serverNotInitialized)

        let result = try await client.initialize()
        #expect(result["server_info"]?["name"] == "qcode")
        #expect(result["capabilities"]?["progress"] == true)
        guard case .array(let methods)? = result["capabilities"]?["methods"] else { Issue.record("no methods"); return }
        #expect(methods.contains("qcode/solve") && methods.contains("$/cancelRequest"))
        // Capabilities come from the registries, not a hand-kept list.
        #expect(result["capabilities"]?["solve_methods"] == .array(Planners.names.map { .string($0) }))
        #expect(result["capabilities"]?["value_models"] == ["zero", "logprob", "qvm"])

        let again = await responseError { try await client.initialize() }
        #expect(again?.code == ErrorCode.invalidRequest)

        let status = try await client.request("qcode/status")
        #expect(status["requests_served"]?.intValue ?? 0 >= 2)

        #expect(try await client.request("shutdown") == .null)
        let afterShutdown = await responseError { try await client.request("qcode/status") }
        #expect(afterShutdown?.code == ErrorCode.invalidRequest)

        // exit ends this session only: the connection closes, the server serves others.
        client.notify("exit")
        await #expect(throws: RPCClient.ClientError.self) { try await within(5) { try await client.request("qcode/status") } }
        let other = try server.connectInProcess()
        defer { other.close() }
        try await other.initialize()
        try await eventually("the exited session to close") { try await other.request("qcode/status")["connections"]?.intValue == 1 }
    }

    @Test func everyErrorCode() async throws {
        let model = BlockingModel()
        let server = makeServer(model, verifier: { timeout in
            if timeout == 99 { throw JailError.launcherNotFound(searched: ["/nowhere"]) }
            return ScriptedVerifier()
        })
        let (a, b) = try UnixSocket.pair()
        Task { await server.serve(Connection(fd: b)) }
        let peer = RawPeer(a)
        defer { peer.connection.close() }
        func send(_ s: String) { peer.connection.sendRaw(FrameParser.frame(Data(s.utf8))) }
        func error(_ m: Message?) -> (RequestID?, Int)? {
            if case .response(let id, .failure(let e))? = m { return (id, e.code) }
            return nil
        }

        send(#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#)
        guard case .response(.int(1)?, .success)? = try await peer.next() else { Issue.record("initialize failed"); return }

        send("{this is not json")
        #expect(error(try await peer.next())?.1 == ErrorCode.parseError)
        send(#"{"id":2,"method":"qcode/status"}"#)
        let invalid = error(try await peer.next())
        #expect(invalid?.0 == .int(2) && invalid?.1 == ErrorCode.invalidRequest)
        send(#"{"jsonrpc":"2.0","id":3,"method":"qcode/frobnicate"}"#)
        #expect(error(try await peer.next())?.1 == ErrorCode.methodNotFound)
        send(#"{"jsonrpc":"2.0","id":4,"method":"qcode/solve","params":{"options":{"method":"greedy"}}}"#)
        #expect(error(try await peer.next())?.1 == ErrorCode.invalidParams)
        send(#"{"jsonrpc":"2.0","id":5,"method":"qcode/test","params":{"program":1,"tests":"assert True"}}"#)
        #expect(error(try await peer.next())?.1 == ErrorCode.invalidParams)
        send(#"{"jsonrpc":"2.0","id":6,"method":"qcode/test","params":{"program":"x=1","tests":"assert x","timeout":99}}"#)
        #expect(error(try await peer.next())?.1 == ErrorCode.internalError)

        send(#"{"jsonrpc":"2.0","id":7,"method":"qcode/solve","params":{"options":{"method":"greedy"},"task":{"text":"add","tests":["assert add(1, 2) == 3"]}}}"#)
        try await model.waitForCalls(1)
        send(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":7}}"#)
        var cancelled: (RequestID?, Int)?
        while let m = try await peer.next() {
            if case .notification = m { continue }  // $/progress begin
            cancelled = error(m)
            break
        }
        #expect(cancelled?.0 == .int(7) && cancelled?.1 == ErrorCode.requestCancelled)

        // A fresh session gets -32002 before initialize.
        let fresh = try server.connectInProcess()
        defer { fresh.close() }
        #expect(await responseError { try await fresh.request("qcode/solve", [:]) }?.code == ErrorCode.serverNotInitialized)
    }
}

@Suite struct CancellationTests {
    @Test func cancelMidSolveReachesTheModelCall() async throws {
        let model = BlockingModel()
        let server = makeServer(model)
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()

        let solve = Task { try await client.solve("qstar") }
        try await model.waitForCalls(1)
        solve.cancel()  // the client sends $/cancelRequest
        let error = await responseError { try await within(30) { try await solve.value } }
        #expect(error?.code == ErrorCode.requestCancelled)
        // The call itself saw the cancellation (it would otherwise sleep for ten minutes).
        try await model.waitForCancellations(1)

        // The queue slot is free again and the session still serves.
        let status = try await client.request("qcode/status")
        #expect(status["solves_running"]?.intValue == 0)
    }

    @Test func disconnectMidSolveCancelsItsWorkAndTheDaemonKeepsServing() async throws {
        let model = BlockingModel()
        let server = makeServer(model)
        let client = try server.connectInProcess()
        try await client.initialize()
        let solve = Task { try? await client.solve("qstar") }
        try await model.waitForCalls(1)
        client.close()
        try await model.waitForCancellations(1)
        _ = await solve.value

        let other = try server.connectInProcess()
        defer { other.close() }
        try await other.initialize()
        try await eventually("the dropped session to close") { try await other.request("qcode/status")["connections"]?.intValue == 1 }
        #expect(try await other.request("qcode/status")["solves_running"]?.intValue == 0)
    }

    @Test func queueBeyondItsBoundAnswersBusy() async throws {
        let model = BlockingModel()
        var settings = DaemonSettings()
        settings.maxConcurrentSolves = 1
        settings.maxQueuedSolves = 1
        let server = makeServer(model, settings: settings)
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        let running = Task { try await client.solve("qstar") }
        try await model.waitForCalls(1)
        let waiting = Task { try await client.solve("qstar") }
        try await eventually("the second solve to wait") { try await client.request("qcode/status")["solves_waiting"]?.intValue == 1 }
        let busy = await responseError { try await client.solve("qstar") }
        #expect(busy?.code == ErrorCode.serverBusy)
        #expect(busy?.message.contains("busy") == true)
        running.cancel()
        waiting.cancel()
        #expect(await responseError { try await running.value }?.code == ErrorCode.requestCancelled)
        #expect(await responseError { try await waiting.value }?.code == ErrorCode.requestCancelled)
    }

    @Test func queueServesConnectionsRoundRobin() async throws {
        let queue = SolveQueue(capacity: 1, maxWaiting: 10)
        try await queue.acquire(owner: 0)
        let order = Recorder()
        var tasks: [Task<Void, any Error>] = []
        // Owner 1 queues three, then owner 2 queues one: owner 2 must not wait behind all of owner 1's.
        for (owner, name) in [(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1")] {
            tasks.append(Task {
                try await queue.acquire(owner: owner)
                await order.add(name)
                await queue.release()
            })
            let expected = tasks.count
            try await eventually("\(name) to queue") { await queue.snapshot.waiting >= expected }
        }
        await queue.release()
        for t in tasks { try await t.value }
        #expect(await order.items == ["a1", "b1", "a2", "a3"])
    }
}

@Suite struct SolveTests {
    @Test func solveReturnsProgramVerdictAssertsAndStatistics() async throws {
        let server = makeServer()
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        let result = try await client.solve("greedy")
        #expect(result["program"]?.stringValue?.contains("return a + b") == true)
        #expect(result["passed"] == 2 && result["total"] == 2)
        #expect(result["verdict"] == "passed")
        guard case .array(let asserts)? = result["asserts"] else { Issue.record("no asserts"); return }
        #expect(asserts.count == 2)
        #expect(result["statistics"]?["cost"]?["llm_calls"] == 1)
        let status = try await client.request("qcode/status")
        #expect(status["solves_completed"] == 1)
        #expect(status["tokens"]?["generated_tokens"]?.intValue ?? 0 > 0)
    }

    @Test func progressNotificationsDuringASearch() async throws {
        let server = makeServer(SlowLineModel())
        let client = try server.connectInProcess()
        defer { client.close() }
        let seen = Box()
        client.onNotification { method, params in
            if method == "$/progress", let params { seen.add(params) }
        }
        try await client.initialize()
        _ = try await client.request("qcode/solve", ["task": try JSONValue.encoding(addSpec), "work_done_token": "tok",
                                                     "options": ["method": "qstar", "budget_expansions": 3, "k": 2]])
        let values = seen.items
        #expect(values.allSatisfy { $0["token"] == "tok" })
        let kinds = values.compactMap { $0["value"]?["kind"]?.stringValue }
        #expect(kinds.first == "begin" && kinds.last == "end")
        let reports = values.filter { $0["value"]?["kind"] == "report" }
        #expect(reports.count >= 2)
        #expect(reports.last?["value"]?["expansions"]?.intValue ?? 0 >= 2)
        #expect(reports.last?["value"]?["generated_tokens"]?.intValue ?? 0 > 0)
    }

    @Test func checkAnswersLikeTheCommandLine() async throws {
        let server = makeServer()
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        let r = try await client.request("qcode/check", ["source": "def add(a, b):\n    return a + b\n", "tests": "assert add(1, 2) == 3\n"])
        #expect(r["verdict"] == "valid")
        #expect(r["entry_point"] == "add" && r["entry_point_defined"] == true && r["entry_point_arity_matches"] == true)
        let broken = try await client.request("qcode/check", ["source": "def f(:\n"])
        #expect(broken["verdict"] == "broken")
        #expect(broken["entry_point_defined"] == .null)
    }
}

@Suite struct FramingOverTheWireTests {
    @Test func malformedAndOversizedFramesCloseThatConnectionOnly() async throws {
        var settings = DaemonSettings()
        settings.maxFrame = 1024
        let server = makeServer(settings: settings)
        let path = tempSocketPath()
        try server.listen(socketPath: path)
        defer { Task { await server.stop() } }

        for garbage in ["Content-Length: 5000\r\n\r\n", "Content-Type: text/plain\r\n\r\n{}", "no header at all\r\n\r\n"] {
            let peer = RawPeer(try UnixSocket.connect(path))
            peer.connection.sendRaw(Data(garbage.utf8))
            let answer = try await peer.next()
            guard case .response(nil, .failure(let e))? = answer else { Issue.record("no error for \(garbage.debugDescription)"); continue }
            #expect(e.code == ErrorCode.parseError)
            #expect(try await peer.next() == nil)  // then the daemon hangs up
        }
        // A body that is not JSON is answered, and the connection stays open.
        let peer = RawPeer(try UnixSocket.connect(path))
        defer { peer.connection.close() }
        peer.connection.sendRaw(FrameParser.frame(Data("}{".utf8)))
        guard case .response(nil, .failure(let e))? = try await peer.next() else { Issue.record("no parse error"); return }
        #expect(e.code == ErrorCode.parseError)
        peer.connection.sendRaw(FrameParser.frame(Data(#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#.utf8)))
        guard case .response(.int(1)?, .success)? = try await peer.next() else { Issue.record("initialize failed after a bad body"); return }

        let client = try RPCClient(socketPath: path)
        defer { client.close() }
        try await client.initialize()
        #expect(try await client.request("qcode/status")["version"] == .string(qcodeVersion))
    }

    @Test func framesDrippedByteByByte() async throws {
        let server = makeServer()
        let path = tempSocketPath()
        try server.listen(socketPath: path)
        defer { Task { await server.stop() } }
        let peer = RawPeer(try UnixSocket.connect(path))
        defer { peer.connection.close() }
        let frames = FrameParser.frame(Data(#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#.utf8))
            + FrameParser.frame(Data(#"{"jsonrpc":"2.0","id":2,"method":"qcode/status"}"#.utf8))
        for byte in frames {
            peer.connection.sendRaw(Data([byte]))
            await peer.connection.flush()
            try await Task.sleep(for: .microseconds(200))
        }
        guard case .response(.int(1)?, .success)? = try await peer.next() else { Issue.record("no initialize answer"); return }
        guard case .response(.int(2)?, .success(let status))? = try await peer.next() else { Issue.record("no status answer"); return }
        #expect(status["requests_served"]?.intValue ?? 0 >= 1)
    }

    @Test func fiftyConcurrentClientsOverTheSocket() async throws {
        var settings = DaemonSettings()
        settings.maxConcurrentSolves = 2
        settings.maxQueuedSolves = 64
        let server = makeServer(settings: settings)
        let path = tempSocketPath()
        try server.listen(socketPath: path)
        defer { Task { await server.stop() } }
        let passed = try await within(60, "50 clients") {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let client = try RPCClient(socketPath: path)
                        defer { client.close() }
                        try await client.initialize()
                        let r = try await client.solve("greedy")
                        _ = try await client.request("shutdown")
                        client.notify("exit")
                        return r["passed"]?.intValue ?? 0
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        #expect(passed == 100)
        let client = try RPCClient(socketPath: path)
        defer { client.close() }
        try await client.initialize()
        let status = try await client.request("qcode/status")
        #expect(status["solves_completed"] == 50)
    }
}

@Suite struct SocketTests {
    @Test func socketPermissionsSecondDaemonAndStaleSocket() async throws {
        let path = tempSocketPath()
        let server = makeServer()
        try server.listen(socketPath: path)
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let dirMode = (try FileManager.default.attributesOfItem(atPath: dir)[.posixPermissions] as? Int) ?? 0
        let sockMode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
        #expect(dirMode & 0o777 == 0o700)
        #expect(sockMode & 0o777 == 0o600)

        #expect { try makeServer().listen(socketPath: path) } throws: { e in
            "\(e)".contains("already running")
        }

        // qcode/stop stops the daemon and removes the socket.
        let client = try RPCClient(socketPath: path)
        try await client.initialize()
        #expect(try await client.request("qcode/stop")["stopping"] == true)
        try await within(5) { await server.waitUntilStopped() }
        #expect(!FileManager.default.fileExists(atPath: path))
        client.close()

        // A socket file nobody listens on is stale: the next daemon replaces it.
        let stale = try UnixSocket.listen(path)
        close(stale)
        #expect(FileManager.default.fileExists(atPath: path))
        let next = makeServer()
        try next.listen(socketPath: path)
        let c2 = try RPCClient(socketPath: path)
        try await c2.initialize()
        c2.close()
        await next.stop()

        // A file that is not a socket is never deleted.
        try "keep me".write(toFile: path, atomically: true, encoding: .utf8)
        #expect { try makeServer().listen(socketPath: path) } throws: { "\($0)".contains("not a socket") }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
    }

    @Test func stopCancelsRunningSolvesAndAnswersThem() async throws {
        let model = BlockingModel()
        let server = makeServer(model)
        let path = tempSocketPath()
        try server.listen(socketPath: path)
        let client = try RPCClient(socketPath: path)
        defer { client.close() }
        try await client.initialize()
        let solve = Task { try await client.solve("qstar") }
        try await model.waitForCalls(1)
        try await within(30) { await server.stop() }
        #expect(model.cancelled.load(ordering: .sequentiallyConsistent) == 1)
        #expect(await responseError { try await solve.value }?.code == ErrorCode.requestCancelled)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func pythonExampleClientTalksToTheDaemon() async throws {
        let server = makeServer()
        let path = tempSocketPath()
        try server.listen(socketPath: path)
        defer { Task { await server.stop() } }
        let taskFile = repoRoot.appendingPathComponent("examples/palindrome/task.json").path
        let output = try await within(60, "python client") { () -> (Int32, String) in
            try await runPython([repoRoot.appendingPathComponent("examples/qcode_client.py").path, "--socket", path, "--method", "greedy", taskFile])
        }
        #expect(output.1.contains("initialized: qcode"), "\(output.1)")
        #expect(output.1.contains("return a + b"), "\(output.1)")
        #expect(output.1.contains("shut down"), "\(output.1)")
    }
}

@Suite struct ConfigTests {
    func file(_ text: String) throws -> URL {
        let file = try tempDirectory("qcode-config").appendingPathComponent("config.toml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    @Test func flagsBeatEnvironmentBeatFileBeatDefaults() throws {
        let file = try file("""
            # settings
            [daemon]
            slots = 3
            threads = 2  # comment
            endpoint = "http://127.0.0.1:9999"
            max_queued_solves = 5
            llm_timeout = 30
            """)
        let c = try Configuration.resolve(flags: [.slots: "7"], environment: ["QCODE_THREADS": "1", "QCODE_SLOTS": "6"], file: file)
        #expect(c.values.slots == 7 && c.sources[.slots] == .flag("--slots"))
        #expect(c.values.threads == 1 && c.sources[.threads] == .environment("QCODE_THREADS"))
        #expect(c.values.endpoint == "http://127.0.0.1:9999" && c.sources[.endpoint] == .file(file.path))
        #expect(c.values.llmTimeout == 30)  // a TOML integer is a fine number of seconds
        #expect(c.values.maxConcurrentSolves == Configuration().maxConcurrentSolves && c.sources[.maxConcurrentSolves] == nil)
        #expect(c.rendered.contains("slots = 7  # flag --slots"))
        #expect(c.rendered.contains("max_concurrent_solves = 2  # default"))
        // Every key of the table is shown.
        for key in ConfigKey.allCases { #expect(c.rendered.contains("\n\(key.rawValue) = ")) }
    }

    @Test func aMisspeltKeyIsAnErrorThatNamesItAndWhereItWas() throws {
        let file = try file("slotz = 3\n")
        #expect { try Configuration.resolve(environment: [:], file: file) } throws: {
            "\($0)".contains("\(file.path): unknown key 'slotz'")
        }
        #expect { try Configuration.resolve(environment: ["QCODE_SLOTZ": "3"], file: nil) } throws: {
            "\($0)".contains("unknown environment variable QCODE_SLOTZ")
        }
        // Variables that are not settings are allowed.
        _ = try Configuration.resolve(environment: ["QCODE_CACHE": "/tmp/x", "QCODE_JAIL": "/bin/true"], file: nil)
        // The jail's own (sandbox/README.md): a delegated cgroup, the warm pool switched off.
        _ = try Configuration.resolve(environment: ["QCODE_JAIL_CGROUP": "/sys/fs/cgroup/qcode", "QCODE_JAIL_POOL": "off"], file: nil)
    }

    @Test func aMistypedValueIsAnErrorThatNamesTheKey() throws {
        #expect { try Configuration.resolve(environment: [:], file: try file("slots = \"eight\"\n")) } throws: {
            "\($0)".contains("slots must be a whole number")
        }
        #expect { try Configuration.resolve(flags: [.slots: "zero"], environment: [:], file: nil) } throws: {
            "\($0)".contains("--slots must be a whole number")
        }
        #expect { try Configuration.resolve(environment: ["QCODE_MODEL": "7b"], file: nil) } throws: {
            "\($0)".contains("QCODE_MODEL must be one of \"0.5b\", \"1.5b\"")
        }
        #expect { try Configuration.resolve(environment: [:], file: try file("slots = [\n")) } throws: {
            "\($0)".contains("line 1")
        }
    }

    @Test func theEmbeddedModelIsASettingLikeTheOthers() throws {
        let c = try Configuration.resolve(environment: ["QCODE_MODEL": "1.5b"], file: nil).values
        #expect(c.model == .large && c.modelFile.lastPathComponent == EmbeddedModel.large.fileName)
        #expect(c.llmDescription.contains("1.5B"))
        let path = try Configuration.resolve(environment: ["QCODE_MODEL_PATH": "/models/x.gguf"], file: nil).values
        #expect(path.modelFile.path == "/models/x.gguf")
    }
}

/// Every solve option reaches the search unchanged, whether the solve runs in
/// this process or through the daemon's wire.
@Suite struct OptionsReachTheSearchTests {
    static let fixture = SolveOptions.everyFieldChanged

    @Test func inProcess() async throws {
        let recorder = RecordingPlanner(name: "best-of-n")
        _ = try await Solver(model: NoModel(), verifier: NoVerifier(), planners: [recorder]).solve(addTask, options: Self.fixture)
        #expect(recorder.settings.withLock { $0 } == [Self.fixture.search])
        #expect(recorder.domainOptions.withLock { $0 } == [Self.fixture])
    }

    @Test func throughTheDaemon() async throws {
        let recorder = RecordingPlanner(name: "best-of-n")
        let timeouts = Mutex<[Double]>([])
        let server = makeServer(NoModel(), planners: [recorder], verifier: { t in timeouts.withLock { $0.append(t) }; return NoVerifier() })
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        _ = try await client.request("qcode/solve", ["task": try JSONValue.encoding(addSpec), "options": try JSONValue.encoding(Self.fixture)])
        #expect(recorder.settings.withLock { $0 } == [Self.fixture.search])
        #expect(recorder.domainOptions.withLock { $0 } == [Self.fixture])
        #expect(timeouts.withLock { $0 } == [Self.fixture.timeout])
    }

    @Test func unknownOrInvalidOptionsAreRefusedWithTheirName() async throws {
        let server = makeServer()
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        for (options, words) in [(["step_tokenz": 8], "unknown field 'step_tokenz'"), (["k": "four"], "options.k"),
                                 (["k": 0], "options.k: must be between 1 and 64"), (["method": "mcts"], "options.method"),
                                 (["value": "qvm:/no/such.qvm"], "options.value")] as [([String: JSONValue], String)] {
            let e = await responseError {
                try await client.request("qcode/solve", ["task": try JSONValue.encoding(addSpec), "options": .object(options)])
            }
            #expect(e?.code == ErrorCode.invalidParams, "\(options)")
            #expect(e?.message.contains(words) == true, "\(e?.message ?? "") should name \(words)")
        }
        // An unknown top-level parameter is refused too.
        let e = await responseError { try await client.request("qcode/solve", ["task": try JSONValue.encoding(addSpec), "method": "greedy"]) }
        #expect(e?.message.contains("unknown field 'method'") == true)
    }
}

@Suite struct PeerCredentialTests {
    /// Only as root can a test connect from another uid; the modes are opened
    /// up so that only SO_PEERCRED stands between that peer and the daemon.
    @Test(.enabled(if: getuid() == 0)) func peersOfAnotherUidAreRefused() async throws {
        let server = makeServer()
        let path = tempSocketPath()
        try server.listen(socketPath: path)
        defer { Task { await server.stop() } }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        chmod(dir.deletingLastPathComponent().path, 0o755)
        chmod(dir.path, 0o755)
        chmod(path, 0o666)
        let script = """
            import os, socket, sys
            os.setgid(65534); os.setuid(65534)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
            body = b'{"jsonrpc":"2.0","id":1,"method":"initialize"}'
            try:
                s.sendall(b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body)
                s.settimeout(5)
                print("answer:", s.recv(100))
            except OSError as e:
                print("answer: b''", e)
            """
        let out = try await within(30, "python as nobody") { () -> String in
            try await runPython(["-c", script, path]).output
        }
        #expect(out.contains("answer: b''"), "\(out)")
        // Our own uid is still served.
        let client = try RPCClient(socketPath: path)
        defer { client.close() }
        try await client.initialize()
    }
}

@Suite struct JailCancellationTests {
    /// The request can only be answered once the jail's run has returned, so
    /// an answer within a second for a program that sleeps 30 s shows the
    /// jail was killed, not abandoned.
    @Test func cancellingATestKillsItsJail() async throws {
        let server = makeServer(verifier: { timeout in
            var limits = JailLimits.default
            limits.wallSeconds = timeout
            limits.cpuSeconds = 60
            return try Jail(limits: limits)
        })
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        let params = try JSONValue.encoding(TestParams(program: "import time\ntime.sleep(30)\n", tests: "assert True\n", timeout: 60))
        let id = client.makeID()
        // Counted before the request starts: with the harness already compiled, the launcher
        // can start before a scan of /proc made after the request would finish.
        let before = jailLaunchers()
        let request = Task { try await client.request("qcode/test", params, id: id) }
        try await eventually("the jail to start") { jailLaunchers().count > before.count }
        client.notify("$/cancelRequest", ["id": .int(Int("\(id)")!)])
        // Answered while the program still had most of its 30 s sleep to go, and no launcher is left.
        let error = await responseError { try await within(20) { try await request.value } }
        #expect(error?.code == ErrorCode.requestCancelled)
        try await eventually("the launcher to be gone") { jailLaunchers().count <= before.count }
    }
}

/// Pids of this process's jail launchers (not --tied-to-parent ones).
func jailLaunchers() -> Set<Int32> {
    let me = getpid()
    var found = Set<Int32>()
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int32(entry),
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { continue }
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        guard fields.count > 2, Int32(fields[1]) == me, fields[0] != "Z" else { continue }
        if cmd.contains("qcode-jail"), !cmd.contains("--tied-to-parent") { found.insert(pid) }
    }
    return found
}

/// The embedded llama-server dying under a solve: the daemon restarts it and
/// retries the call (no work lost); a second death says so plainly.
@Suite struct EmbeddedServerCrashTests {
    func daemon(_ fake: FakeLlamaServer) throws -> DaemonServer {
        let config = try Configuration.resolve(flags: [.llamaServer: FakeLlamaServer.binary.path, .modelPath: fake.script.path],
                                               environment: [:], file: nil).values
        return DaemonServer(components: Components.make(config), settings: DaemonSettings(config))
    }

    @Test func aKillDuringASolveIsSurvived() async throws {
        let fake = try FakeLlamaServer(stall: true)
        let server = try daemon(fake)
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        let solve = Task { try await client.solve("greedy") }
        try await fake.waitForRequests(1)
        let first = fake.requestPids[0]
        // Killed before it may answer: lifting the stall first would let it answer, under load, before the kill.
        kill(first, SIGKILL)
        try fake.set(stall: false)
        let result = try await within(120, "the solve") { try await solve.value }
        #expect(result["program"]?.stringValue?.contains("return a + b") == true)
        #expect(fake.requestPids.count == 2 && fake.requestPids[1] != first)
        let status = try await client.request("qcode/status")
        #expect(status["llm"]?["detail"]?.stringValue?.contains("restarted 1×") == true)
        await server.stop()
    }

    @Test func aSecondKillDuringTheRetryGivesTheClearMessage() async throws {
        let fake = try FakeLlamaServer(stall: true)
        let server = try daemon(fake)
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        let solve = Task { try await client.solve("greedy") }
        try await fake.waitForRequests(1)
        kill(fake.requestPids[0], SIGKILL)
        try await fake.waitForRequests(2)
        kill(fake.requestPids[1], SIGKILL)
        let error = await responseError { try await within(120, "the failing solve") { try await solve.value } }
        #expect(error?.message.contains("embedded llama-server crashed during this call, was restarted, and crashed again") == true)
        #expect(error?.message.contains("llama-server.log") == true)
        // The daemon keeps serving, and says what went wrong last.
        let status = try await client.request("qcode/status")
        #expect(status["llm"]?["last_error"]?.stringValue?.contains("crashed again") == true)
        await server.stop()
    }
}
