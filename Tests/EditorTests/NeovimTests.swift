import Foundation
import Policy
import Testing
import TestSupport

/// The Neovim plugin in a real headless Neovim — Debian 12's 0.7.2 and 0.11 — driving
/// the built `qcode lsp`, which starts its own daemon: what a user gets, end to end.
/// Each test runs `editors/nvim/test/NAME.lua` in an editor whose runtime, config
/// and cache folders and daemon socket are its own; the script's exit status is
/// its verdict. Afterwards nothing the editor started may be left but the daemon
/// (which outlives editors by design, with no client left), and after `qcode stop`
/// nothing at all.
@Suite(.serialized) struct NeovimTests {
    static let debian = "/usr/bin/nvim"
    static let current = QCodeCache.root.appendingPathComponent("nvim-0.11/bin/nvim").path
    static let qcodeBinary = buildProducts.appendingPathComponent("qcode").path

    /// One editor session's private world.
    struct Session {
        let dir: URL
        let module: URL
        let socket: String
        /// Every process the session starts carries this in its environment.
        let runtime: String

        init() throws {
            dir = try tempDirectory("qcode-nvim")
            runtime = dir.appendingPathComponent("run").path
            try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            socket = runtime + "/qcode/qcode.sock"
            module = dir.appendingPathComponent("mathy.py")
            try FileManager.default.copyItem(at: repoRoot.appendingPathComponent("editors/nvim/test/fixtures/mathy.py"), to: module)
        }

        var log: String { (try? String(contentsOf: dir.appendingPathComponent("daemon.log"), encoding: .utf8)) ?? "(no daemon log)" }

        /// Runs the Lua test; its exit status, output and the record it wrote.
        func neovim(_ nvim: String, _ script: String, settings: [String: Any], extra: [String: String] = [:],
                    timeout: Int = 300) async throws -> (status: Int32, output: String, result: [String: Any]) {
            var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("QCODE_") || $0.key == "QCODE_CACHE" }
            for name in ["XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"] {
                env[name] = dir.appendingPathComponent("xdg").path
            }
            env["XDG_RUNTIME_DIR"] = runtime
            env["QCODE_LOG_FILE"] = dir.appendingPathComponent("daemon.log").path
            env["QCODE_JAIL"] = buildProducts.appendingPathComponent("qcode-jail").path
            env["QTEST_PLUGIN"] = repoRoot.appendingPathComponent("editors/nvim").path
            env["QTEST_QCODE"] = NeovimTests.qcodeBinary
            env["QTEST_MODULE"] = module.path
            env["QTEST_RESULT"] = dir.appendingPathComponent("result.json").path
            env["QTEST_SETTINGS"] = String(decoding: try JSONSerialization.data(withJSONObject: settings), as: UTF8.self)
            for (k, v) in extra { env[k] = v }
            let out = try await run("/usr/bin/timeout", ["-k", "10", String(timeout), nvim, "--headless", "-u", "NONE", "-i", "NONE",
                                                         "-n", "-c", "luafile editors/nvim/test/\(script).lua"],
                                    environment: env, currentDirectory: repoRoot)
            let data = (try? Data(contentsOf: dir.appendingPathComponent("result.json"))) ?? Data("{}".utf8)
            return (out.status, out.output, (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:])
        }

        /// Pids of the live processes this session started (their environment names its runtime folder).
        var processes: [Int32] {
            let marker = Data("XDG_RUNTIME_DIR=\(runtime)\0".utf8)
            let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap(Int32.init) ?? []
            return pids.filter { pid in
                guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ"), environ.range(of: marker) != nil,
                      let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                      let close = stat.lastIndex(of: ")") else { return false }
                return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first != "Z"
            }
        }

        func daemonStatus() async throws -> [String: Any] {
            let out = try await run(NeovimTests.qcodeBinary, ["status", "--json", "--socket", socket])
            return (try? JSONSerialization.jsonObject(with: Data(out.output.utf8)) as? [String: Any]) ?? ["unreadable": out.output]
        }

        /// After the editor quit: its `qcode lsp` is gone, the daemon has no client and no search left,
        /// and once stopped nothing this session started runs.
        func expectNothingLeft(_ result: [String: Any]) async throws {
            let lspPids = (result["lsp_pids"] as? [Int]) ?? []
            #expect(lspPids.count == 1, "the qcode lsp Neovim started: \(lspPids)")
            try await eventually("qcode lsp to exit with the editor") { lspPids.allSatisfy { !processes.contains(Int32($0)) } }
            let status = try await daemonStatus()
            #expect(status["connections"] as? Int == 1, "only this status query may be connected: \(status)")
            #expect(status["solves_running"] as? Int == 0 && status["solves_waiting"] as? Int == 0, "\(status)")
            let daemon = try #require(status["pid"] as? Int)
            #expect(processes.contains(Int32(daemon)), "the daemon qcode lsp started is this session's")
            _ = try await run(NeovimTests.qcodeBinary, ["stop", "--socket", socket])
            try await eventually("every process of the session to end") { processes.isEmpty }
            // Its folder (module, daemon log, result) is kept only when the test failed before here.
            try? FileManager.default.removeItem(at: dir)
        }
    }

    /// A function that passes its doctests: what the scripted endpoint answers for `double`.
    static let body = "    return x * 2\n\n\nprint(double(2))\n```"

    @Test(.enabled(if: Prerequisite.neovim.shouldRun)) func theCodeActionWritesAFunctionThatPassesItsTests() async throws {
        try Prerequisite.neovim.require()
        try await implement(in: Self.debian)
    }

    @Test(.enabled(if: Prerequisite.neovim.shouldRun)) func cancellingMidSearchStopsTheDaemonsSearch() async throws {
        try Prerequisite.neovim.require()
        try await cancel(in: Self.debian)
    }

    @Test(.enabled(if: Prerequisite.neovim011.shouldRun)) func theCodeActionInNeovim011() async throws {
        try Prerequisite.neovim011.require()
        try await implement(in: Self.current)
    }

    @Test(.enabled(if: Prerequisite.neovim011.shouldRun)) func cancellingInNeovim011() async throws {
        try Prerequisite.neovim011.require()
        try await cancel(in: Self.current)
    }

    func implement(in nvim: String) async throws {
        let session = try Session()
        let endpoint = try await FakeEndpoint(program: Self.body)
        defer { endpoint.stop() }
        let (status, output, result) = try await session.neovim(
            nvim, "implement_test", settings: ["method": "greedy", "endpoint": endpoint.url, "api": "llama", "budget_tokens": 200])
        #expect(status == 0, "\(output)\n\(result)\n\(session.log)")
        #expect(result["ok"] as? Bool == true)
        let said = result["messages"] as? String ?? ""
        #expect(!said.localizedCaseInsensitiveContains("deprecat") && !said.contains("Error") && said.contains("Workspace edit qcode"),
                "Neovim's messages: \(said)")
        // What Neovim saw: the action, the progress, the answer; the file written from the buffer passes its doctests.
        let kinds = ((result["progress"] as? [[String: Any]]) ?? []).compactMap { $0["kind"] as? String }
        #expect(kinds.first == "begin" && kinds.last == "end" && kinds.contains("report"), "\(kinds)")
        let written = try String(contentsOf: session.module, encoding: .utf8)
        #expect(written.contains("    \"\"\"\n    return x * 2\n\n\ndef hypotenuse"), "\(written)")
        let doctest = try await runPython(["-m", "doctest", session.module.path])
        #expect(doctest.status == 0, "\(doctest.output)")
        try await session.expectNothingLeft(result)
    }

    func cancel(in nvim: String) async throws {
        let session = try Session()
        let endpoint = try await FakeEndpoint(program: Self.body)
        defer { endpoint.stop() }
        try endpoint.fake.set(program: Self.body, stall: true)  // every completion hangs until the search is cancelled
        let (status, output, result) = try await session.neovim(
            nvim, "cancel_test", settings: ["method": "greedy", "endpoint": endpoint.url, "api": "llama"],
            extra: ["QTEST_FAKE_LOG": endpoint.fake.log.path])
        #expect(status == 0, "\(output)\n\(result)\n\(session.log)")
        #expect((result["cancel"] as? [String: Any])?["cancelled"] as? Int == 1)
        #expect((result["after_cancel"] as? [String: Any])?["solves_running"] as? Int == 0)
        #expect(endpoint.fake.requestPids.count == 1, "the search asked the model again after it was cancelled")
        if let ms = result["cancel_ms"] as? Double { print("NeovimTests (\(nvim)): :QcodeCancel answered, search stopped, after \(Int(ms)) ms") }
        try endpoint.fake.set(program: Self.body)  // let the fake's held handler go
        try await session.expectNothingLeft(result)
    }

    /// The slow one: the embedded 0.5B model, started by the daemon qcode lsp started.
    @Test(.enabled(if: Prerequisite.neovim.shouldRun && Prerequisite.smallModel.shouldRun))
    func theCodeActionWithTheRealModel() async throws {
        try Prerequisite.neovim.require()
        try Prerequisite.smallModel.require()
        let session = try Session()
        let (status, output, result) = try await session.neovim(
            Self.debian, "implement_test", settings: ["method": "greedy", "model": "0.5b", "budget_tokens": 300],
            extra: ["QTEST_TIMEOUT_MS": "420000"], timeout: 600)
        #expect(status == 0, "\(output)\n\(result)\n\(session.log)")
        let doctest = try await runPython(["-m", "doctest", session.module.path])
        #expect(doctest.status == 0, "\(doctest.output)")
        print("NeovimTests (real model): \((result["buffer"] as? String)?.components(separatedBy: "\n").dropFirst(12).first ?? "?")")
        try await session.expectNothingLeft(result)
    }
}
