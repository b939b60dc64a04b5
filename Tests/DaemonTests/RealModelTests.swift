import CodeDomain
import Foundation
import Policy
import QStar
import QVM
import RPC
import Testing
import TestSupport
@testable import Daemon

/// The whole stack: the real socket, the embedded llama-server with the 0.5B
/// model (the fast one: CI runs these), the real jail. Skipped locally when
/// the model is missing; in CI a missing model fails.
@Suite(.serialized, .enabled(if: Prerequisite.smallModel.shouldRun))
struct RealModelTests {
    init() throws { try Prerequisite.smallModel.require() }

    static func configuration(socket: String) throws -> Configuration {
        try Configuration.resolve(flags: [.socket: socket, .model: "0.5b", .slots: "4", .threads: "2"],
                                  environment: [:], file: nil).values
    }

    /// The pid of the llama-server behind the daemon's parent tie (its only child).
    static func serverPid(under tie: Int32) -> Int32? {
        let children = (try? String(contentsOfFile: "/proc/\(tie)/task/\(tie)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").compactMap { Int32($0) }.first
    }

    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        return stat.split(separator: ")").last?.split(separator: " ").first != "Z"
    }

    @Test func greedySolveOfThePalindromeTaskThroughTheSocketLeavesNoServerBehind() async throws {
        let path = tempSocketPath()
        let config = try Self.configuration(socket: path)
        let components = Components.make(config)
        let server = DaemonServer(components: components, settings: DaemonSettings(config))
        try server.listen(socketPath: path)
        let client = try RPCClient(socketPath: path)
        let taskFile = repoRoot.appendingPathComponent("examples/palindrome/task.json").path
        let result: JSONValue
        do {
            result = try await within(900, "a real greedy solve") {
                try await client.initialize()
                return try await client.request("qcode/solve", ["task_file": .string(taskFile), "options": ["method": "greedy"]])
            }
        } catch {
            // A failed solve must not leave the daemon's jail pool behind for later suites to find.
            client.close()
            await server.stop()
            throw error
        }
        #expect(result["task_id"] == "task")
        #expect(result["total"] == 4)
        #expect(result["program"]?.stringValue?.contains("def is_palindrome") == true)
        #expect(result["statistics"]?["cost"]?["generated_tokens"]?.intValue ?? 0 > 0)
        guard case .array(let asserts)? = result["asserts"] else { Issue.record("no asserts"); return }
        #expect(asserts.count == 4)
        // The real processes: the tie qcode started, and the llama-server under it.
        let tie = try #require(await components.server?.pid)
        let llama = try #require(Self.serverPid(under: tie))
        #expect(Self.isRunning(tie) && Self.isRunning(llama))
        client.close()
        try await within(60, "stopping") { await server.stop() }
        try await eventually("the llama-server to exit") { !Self.isRunning(llama) && !Self.isRunning(tie) }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    /// Q* with K > 1 on the real model: several expansions, prefix-cache reuse
    /// on a pinned slot, and the same seed reproducing the same search.
    @Test func qstarWithSeveralCandidatesIsReproducibleAndReusesThePrefixCache() async throws {
        let config = try Self.configuration(socket: tempSocketPath())
        let components = Components.make(config)
        let solver = Solver(model: components.model, verifier: try components.verifier(timeout: 10), values: ValueModels())
        // A visible test no honest program passes, so the search cannot stop at
        // its first program and must make further calls on the same slot.
        let task = CodeTask(id: "add", text: "Write a python function to add two numbers.",
                            tests: ["assert add(1, 2) == 3 and add(2, 2) == 5"])
        var options = SolveOptions()
        options.method = "qstar"
        options.search.k = 3
        options.search.seed = 11
        options.search.budget.maxExpansions = 3
        options.search.budget.maxGeneratedTokens = 400
        let chosen = options
        func solve(_ what: String) async throws -> SolveResult {
            do {
                let result = try await within(600, what) { try await solver.solve(task, options: chosen, trace: true, slot: 1) }
                // A fresh server for the next run, so both start from the same (empty) cache.
                await components.shutdown()
                return result
            } catch {
                await components.shutdown()
                throw error
            }
        }
        let first = try await solve("the first Q* solve")
        let second = try await solve("the second Q* solve")
        let stats = first.statistics
        #expect(stats.stop != .solved)
        #expect(stats.expansions >= 2)
        #expect(stats.cost.llmCalls >= 2)
        // Calls after the first find the task prefix in the slot's cache.
        #expect(stats.cost.cachedPromptTokens > 0)
        #expect(first.trace?.map(\.action) == second.trace?.map(\.action))
        #expect(first.program == second.program)
    }
}
