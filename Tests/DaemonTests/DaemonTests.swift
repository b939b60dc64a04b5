import CodeDomain
import Foundation
import Policy
import RPC
import Sandbox
import Synchronization
import Testing
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
        try await within(5, "the exited session to close") {
            while try await other.request("qcode/status")["connections"]?.intValue != 1 { try await Task.sleep(for: .milliseconds(10)) }
        }
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
        send(#"{"jsonrpc":"2.0","id":4,"method":"qcode/solve","params":{"method":"greedy"}}"#)
        #expect(error(try await peer.next())?.1 == ErrorCode.invalidParams)
        send(#"{"jsonrpc":"2.0","id":5,"method":"qcode/test","params":{"program":1,"tests":"assert True"}}"#)
        #expect(error(try await peer.next())?.1 == ErrorCode.invalidParams)
        send(#"{"jsonrpc":"2.0","id":6,"method":"qcode/test","params":{"program":"x=1","tests":"assert x","timeout":99}}"#)
        #expect(error(try await peer.next())?.1 == ErrorCode.internalError)

        send(#"{"jsonrpc":"2.0","id":7,"method":"qcode/solve","params":{"method":"greedy","task":{"text":"add","tests":["assert add(1, 2) == 3"]}}}"#)
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
    @Test func cancelMidSolveStopsTheModelCallWithinOneSecond() async throws {
        let model = BlockingModel()
        let server = makeServer(model)
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()

        let solve = Task { try await client.solve("qstar") }
        try await model.waitForCalls(1)
        let cancelledAt = ContinuousClock.now
        solve.cancel()  // the client sends $/cancelRequest
        let error = await responseError { try await within(5) { try await solve.value } }
        #expect(error?.code == ErrorCode.requestCancelled)
        try await model.waitForCancellations(1, timeout: 1)
        let seen = model.cancelled.withLock { $0[0] }
        #expect(seen - cancelledAt < .seconds(1))

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
        let closedAt = ContinuousClock.now
        client.close()
        try await model.waitForCancellations(1, timeout: 1)
        #expect(model.cancelled.withLock { $0[0] } - closedAt < .seconds(1))
        _ = await solve.value

        let other = try server.connectInProcess()
        defer { other.close() }
        try await other.initialize()
        try await within(5, "the dropped session to close") {
            while try await other.request("qcode/status")["connections"]?.intValue != 1 { try await Task.sleep(for: .milliseconds(10)) }
        }
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
        try await within(5) {
            while try await client.request("qcode/status")["solves_waiting"]?.intValue != 1 {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
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
            try await within(5) { while await queue.snapshot.waiting < expected { try await Task.sleep(for: .milliseconds(5)) } }
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
        _ = try await client.request("qcode/solve", ["task": try JSONValue.encoding(addTask), "method": "qstar",
                                                     "options": ["budget_expansions": 3, "k": 2], "work_done_token": "tok"])
        let values = seen.items
        #expect(values.allSatisfy { $0["token"] == "tok" })
        let kinds = values.compactMap { $0["value"]?["kind"]?.stringValue }
        #expect(kinds.first == "begin" && kinds.last == "end")
        let reports = values.filter { $0["value"]?["kind"] == "report" }
        #expect(reports.count >= 2)
        #expect(reports.last?["value"]?["expansions"]?.intValue ?? 0 >= 2)
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
            peer.connection.flush()
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
        try await within(5) { await server.stop() }
        #expect(model.cancelled.withLock { $0.count } == 1)
        #expect(await responseError { try await solve.value }?.code == ErrorCode.requestCancelled)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func pythonExampleClientTalksToTheDaemon() async throws {
        let server = makeServer()
        let path = tempSocketPath()
        try server.listen(socketPath: path)
        defer { Task { await server.stop() } }
        let taskFile = repoRoot.appendingPathComponent("examples/palindrome/task.json").path
        let output = try await within(30, "python client") { () -> (Int32, String) in
            try runPython([repoRoot.appendingPathComponent("examples/qcode_client.py").path, "--socket", path, "--method", "greedy", taskFile])
        }
        #expect(output.1.contains("initialized: qcode"), "\(output.1)")
        #expect(output.1.contains("return a + b"), "\(output.1)")
        #expect(output.1.contains("shut down"), "\(output.1)")
    }
}

@Suite struct ConfigTests {
    @Test func flagsBeatEnvironmentBeatFileBeatDefaults() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qcode-config-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("config.toml")
        try """
            # settings
            [daemon]
            slots = 3
            threads = 2  # comment
            endpoint = "http://127.0.0.1:9999"
            max_queued_solves = 5
            """.write(to: file, atomically: true, encoding: .utf8)
        let c = try DaemonConfig.resolve(flags: ["slots": "7"], environment: ["QCODE_THREADS": "1", "QCODE_SLOTS": "6"], file: file)
        #expect(c["slots"] == "7" && c.sources["slots"] == .flag("slots"))
        #expect(c["threads"] == "1" && c.sources["threads"] == .environment("QCODE_THREADS"))
        #expect(c["endpoint"] == "http://127.0.0.1:9999" && c.sources["endpoint"] == .file(file.path, line: 5))
        #expect(c["max_concurrent_solves"] == "2" && c.sources["max_concurrent_solves"] == .defaultValue)
        #expect(c.rendered.contains("slots = 7  # flag --slots"))

        #expect { try DaemonConfig.resolve(flags: ["slots": "zero"], environment: [:], file: nil) } throws: { "\($0)".contains("slots") }
        try "bogus = 1\n".write(to: file, atomically: true, encoding: .utf8)
        #expect { try DaemonConfig.resolve(environment: [:], file: file) } throws: { "\($0)".contains("unknown key 'bogus'") }
    }
}

actor Recorder {
    var items: [String] = []
    func add(_ s: String) { items.append(s) }
}

final class Box: Sendable {
    let values = Mutex<[JSONValue]>([])
    func add(_ v: JSONValue) { values.withLock { $0.append(v) } }
    var items: [JSONValue] { values.withLock { $0 } }
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
        let out = try await within(15, "python as nobody") { () -> String in
            try runPython(["-c", script, path]).output
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
    @Test func cancellingATestKillsItsJailAtOnce() async throws {
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
        let request = Task { try await client.request("qcode/test", params, id: id) }
        try await Task.sleep(for: .milliseconds(500))  // let the jail start
        let cancelledAt = ContinuousClock.now
        client.notify("$/cancelRequest", ["id": .int(Int("\(id)")!)])
        let error = await responseError { try await within(10) { try await request.value } }
        #expect(error?.code == ErrorCode.requestCancelled)
        #expect(ContinuousClock.now - cancelledAt < .seconds(1))
    }
}

/// Runs python3 with `arguments` to completion; stdout and stderr together.
func runPython(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
