import Foundation
import Policy
import RPC
import Testing
@testable import Daemon

/// The whole stack once: the real socket, the embedded llama-server with the
/// 0.5B model, the real jail. Skipped when the model is not installed
/// (scripts/bootstrap), or with QCODE_SKIP_REAL_LLM=1.
@Suite struct RealModelTests {
    static var available: Bool {
        ProcessInfo.processInfo.environment["QCODE_SKIP_REAL_LLM"] == nil
            && FileManager.default.fileExists(atPath: QCodeCache.modelPath().path)
            && FileManager.default.isExecutableFile(atPath: QCodeCache.serverBinary.path)
    }

    @Test(.enabled(if: RealModelTests.available))
    func greedySolveOfThePalindromeTaskThroughTheSocket() async throws {
        let path = tempSocketPath()
        let config = try DaemonConfig.resolve(flags: ["socket": path, "slots": "1", "threads": "2"], environment: [:], file: nil)
        let components = Components.make(config)
        let server = DaemonServer(components: components, settings: DaemonSettings(config))
        try server.listen(socketPath: path)
        let client = try RPCClient(socketPath: path)
        let taskFile = repoRoot.appendingPathComponent("examples/palindrome/task.json").path
        let result = try await within(900, "a real greedy solve") {
            try await client.initialize()
            return try await client.request("qcode/solve", ["task_file": .string(taskFile), "method": "greedy"])
        }
        client.close()
        #expect(result["task_id"] == "task")
        #expect(result["total"] == 4)
        #expect(result["program"]?.stringValue?.contains("def is_palindrome") == true)
        #expect(result["statistics"]?["cost"]?["generated_tokens"]?.intValue ?? 0 > 0)
        guard case .array(let asserts)? = result["asserts"] else { Issue.record("no asserts"); return }
        #expect(asserts.count == 4)
        try await within(20, "stopping") { await server.stop() }
        #expect(await components.server?.isRunning == false)  // no orphaned llama-server
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
