import Basics
import CodeDomain
import Foundation
import Testing
import TestSupport
@testable import qcode

// Rows of the fault matrix (docs/faults.md) that need the qcode executable
// itself: a daemon killed under a client, outputs that cannot be written, and
// what `qcode status` prints after an LLM failure.

/// Runs the built `qcode` with a soft limit on the size of files it may write
/// (`ulimit -S -f`, in 512-byte blocks): a disk that fills up mid-write, for a
/// user who is root. SIGXFSZ is ignored, so writes fail with EFBIG instead.
func qcodeWithFileSizeLimit(blocks: Int, _ arguments: [String], environment: [String: String] = [:]) async throws
    -> (status: Int32, output: String) {
    try await run("/bin/sh", ["-c", "trap '' XFSZ; ulimit -S -f \(blocks); exec \"$0\" \"$@\"", qcodeBinary] + arguments,
                  environment: try qcodeEnvironment(environment), currentDirectory: repoRoot)
}

/// A one-task (or more) MBPP file for `add`.
func mbppFile(_ dir: URL, tasks: Int) throws -> String {
    let lines = (0..<tasks).map { i in
        #"{"task_id": \#(i + 1), "text": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b", "test_list": ["assert add(1, 2) == 3", "assert add(\#(i), 1) == \#(i + 1)"], "test_setup_code": "", "challenge_test_list": []}"#
    }
    let path = dir.appendingPathComponent("tasks.jsonl").path
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
    return path
}

/// Files in `dir` other than `expected` (a temporary file left behind would show here).
func strayFiles(_ dir: URL, expected: Set<String>) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !expected.contains($0) }
}

/// A process is gone: no such pid, or a zombie its new parent has yet to reap.
func isGone(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
    return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
}

func parentPid(_ pid: Int32) -> Int32? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
    let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
    return fields.count > 1 ? Int32(fields[1]) : nil
}

@Suite(.serialized) struct DaemonFaultTests {
    static let task = repoRoot.appendingPathComponent("examples/palindrome/task.json").path

    /// kill -9 of the daemon mid-solve: the client says what happened, the
    /// llama-server it ran goes with it, and the next command starts a fresh
    /// daemon on the stale socket.
    @Test func daemonKilledMidSolve() async throws {
        let fake = try FakeLlamaServer(stall: true)
        defer { try? fake.set(stall: false) }
        let socket = tempSocketPath()
        let log = try tempDirectory("qcode-daemon-log").appendingPathComponent("daemon.log").path
        let env = ["QCODE_LOG_FILE": log]
        let solve = Task {
            try await qcode(["solve", Self.task, "--method", "greedy", "--socket", socket, "--llama-server", FakeLlamaServer.binary.path,
                             "--model-path", fake.script.path], environment: env)
        }
        try await fake.waitForRequests(1)  // the solve is waiting on the LLM, inside the daemon
        let status = try await qcode(["status", "--socket", socket, "--json"], environment: env)
        let daemonPid = try #require((try JSONSerialization.jsonObject(with: Data(status.output.utf8)) as? [String: Any])?["pid"] as? Int)
        let server = fake.requestPids[0]
        let tie = try #require(parentPid(server))
        #expect(parentPid(tie) == Int32(daemonPid))  // llama-server runs under qcode-jail --tied-to-parent, the daemon's child

        kill(Int32(daemonPid), SIGKILL)
        let client = try await within(60, "the client") { try await solve.value }
        #expect(client.status == 2)
        #expect(client.output.contains("qcode: the qcode daemon went away before it answered (it crashed or was killed): see \(log); "
            + "run the command again to start a new daemon, or pass --no-daemon"), "\(client.output)")
        // No orphans: the tie saw its parent go and stopped the server (with SIGTERM), then itself.
        try await eventually("the llama-server to go") { isGone(server) }
        try await eventually("its parent tie to go") { isGone(tie) }
        #expect(fake.terminatedGracefully)

        // The socket file is stale: no daemon answers there, and the next command replaces it.
        #expect(FileManager.default.fileExists(atPath: socket))
        let none = try await qcode(["status", "--socket", socket], environment: env)
        #expect(none.status == 3 && none.output.contains("no qcode daemon on \(socket)"), "\(none.output)")
        let source = try tempDirectory("qcode-check").appendingPathComponent("x.py")
        try "x = 1\n".write(to: source, atomically: true, encoding: .utf8)
        let check = try await qcode(["check", source.path, "--socket", socket], environment: env)
        #expect(check.status == 0 && check.output.contains("valid"), "\(check.output)")
        let fresh = try await qcode(["status", "--socket", socket, "--json"], environment: env)
        let freshPid = (try JSONSerialization.jsonObject(with: Data(fresh.output.utf8)) as? [String: Any])?["pid"] as? Int
        #expect(freshPid != nil && freshPid != daemonPid)
        _ = try await qcode(["stop", "--socket", socket], environment: env)
    }

    /// The daemon's log cannot be created: the command says which file and stops.
    @Test func unwritableDaemonLogSaysWhichFile() async throws {
        let dir = try tempDirectory("qcode-log")
        let file = dir.appendingPathComponent("not-a-folder")
        try "".write(to: file, atomically: true, encoding: .utf8)
        let source = dir.appendingPathComponent("x.py")
        try "x = 1\n".write(to: source, atomically: true, encoding: .utf8)
        let log = file.appendingPathComponent("daemon.log").path
        let result = try await qcode(["check", source.path, "--socket", tempSocketPath()], environment: ["QCODE_LOG_FILE": log])
        #expect(result.status == 2)
        #expect(result.output.contains("cannot write the daemon log \(log)"), "\(result.output)")
    }

    /// An HTTP 500 from the endpoint: the solve says so, `qcode status` shows
    /// it as the last LLM error, and the same daemon solves once the server heals.
    @Test func statusShowsTheLastLLMErrorAndTheDaemonKeepsServing() async throws {
        let palindrome = "def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1]\n"
        let endpoint = try await FakeEndpoint(program: palindrome)
        defer { endpoint.stop() }
        let socket = tempSocketPath()
        let solve = ["solve", Self.task, "--method", "greedy", "--endpoint", endpoint.url, "--api", "llama", "--socket", socket]
        try endpoint.fake.set(status: 500, body: #"{"error":{"message":"out of slots"}}"#)
        let failed = try await qcode(solve)
        #expect(failed.status == 2)
        #expect(failed.output.contains("qcode: the LLM server answered HTTP 500 (out of slots), also after qcode's retries: "
            + "it failed on this request; see the server's log"), "\(failed.output)")
        let status = try await qcode(["status", "--socket", socket])
        #expect(status.output.contains("last LLM error  "), "\(status.output)")
        #expect(status.output.contains(": the LLM server answered HTTP 500 (out of slots)"), "\(status.output)")
        try endpoint.fake.set(program: palindrome)
        let healed = try await qcode(solve)
        #expect(healed.status == 0, "\(healed.output)")
        _ = try await qcode(["stop", "--socket", socket])
    }
}

@Suite(.serialized) struct OutputFaultTests {
    @Test func reportPathThroughAFileFailsBeforeAnyWork() async throws {
        let dir = try tempDirectory("qcode-out")
        let data = try mbppFile(dir, tasks: 1)
        try "".write(to: dir.appendingPathComponent("afile"), atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("afile/report.json").path
        // No endpoint answers at this address: the run must stop before it needs one.
        let result = try await qcode(["bench", data, "--out", out, "--endpoint", "http://127.0.0.1:9", "--api", "llama"])
        #expect(result.status == 2)
        #expect(result.output.contains("qcode: cannot write \(out): Not a directory; a part of the path is not a folder: choose another path"),
                "\(result.output)")
        let rollouts = try await qcode(["rollouts", data, "--out", out, "--endpoint", "http://127.0.0.1:9", "--api", "llama"])
        #expect(rollouts.status == 2)
        #expect(rollouts.output.contains("cannot write rollouts file \(out): Not a directory"), "\(rollouts.output)")
        let qvm = try await qcode(["train-qvm", "r.jsonl", "--data", data, "--out", out])
        #expect(qvm.status == 2 && qvm.output.contains("cannot write \(out): Not a directory"), "\(qvm.output)")
        #expect(try strayFiles(dir, expected: ["afile", "tasks.jsonl"]).isEmpty)
    }

    /// The disk fills while the report is saved after a task: the report from
    /// before stays whole (resumable), and no temporary file is left.
    @Test func reportOnAFullDiskKeepsThePreviousReport() async throws {
        // The limit also counts the memfds qcode hands the jail (the ~40 KB harness source, the job): a long
        // program makes the report, and so the limit, larger than both, so the second task runs and only its save fails.
        let filler = String(repeating: "# padding to make the report larger than the jail's own writes\n", count: 1200)
        let endpoint = try await FakeEndpoint(program: filler + "def add(a, b):\n    return a + b\n")
        defer { endpoint.stop() }
        let dir = try tempDirectory("qcode-bench")
        let data = try mbppFile(dir, tasks: 2)
        let out = dir.appendingPathComponent("report.json").path
        let bench = ["bench", data, "--method", "greedy", "--endpoint", endpoint.url, "--api", "llama", "--out", out]
        let first = try await qcode(bench + ["--limit", "1"])
        #expect(first.status == 0, "\(first.output)")
        let before = try Data(contentsOf: URL(fileURLWithPath: out))
        // Room for the one-task report, not for the two-task one.
        let full = try await qcodeWithFileSizeLimit(blocks: before.count / 512 + 1, bench + ["--limit", "2"])
        #expect(full.status == 2)
        #expect(full.output.contains("qcode: cannot write \(out): File too large; the file is larger than this process may write"),
                "\(full.output)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == before)
        #expect(try strayFiles(dir, expected: ["report.json", "tasks.jsonl"]).isEmpty)
        // With room again, the run resumes from the saved task.
        let resumed = try await qcode(bench + ["--limit", "2"])
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(resumed.output.contains("| greedy | - | 2 |"), "\(resumed.output)")
    }

    /// The disk fills while a task's rollouts are appended: the file is cut
    /// back to the tasks it held (no torn record), the run stops with the
    /// reason instead of crashing, and a later run carries on.
    @Test func rolloutsOnAFullDiskKeepWholeTasks() async throws {
        // A long program makes records large beside the jail's own small writes.
        // (Larger than the harness source each qcode process compiles through a memfd, which the limit also counts:
        // the second task's programs run, and only their append fails.)
        let filler = String(repeating: "# padding to make each rollout record large\n", count: 1000)
        let endpoint = try await FakeEndpoint(program: filler + "def add(a, b):\n    return a + b\n")
        defer { endpoint.stop() }
        let dir = try tempDirectory("qcode-rollouts")
        let data = try mbppFile(dir, tasks: 2)
        let out = dir.appendingPathComponent("rollouts.jsonl").path
        let rollouts = ["rollouts", data, "--per-task", "2", "--endpoint", endpoint.url, "--api", "llama", "--out", out]
        let first = try await qcode(rollouts + ["--limit", "1"])
        #expect(first.status == 0, "\(first.output)")
        let before = try Data(contentsOf: URL(fileURLWithPath: out))
        // Room for a part of the second task's records: the write starts, then fails.
        let full = try await qcodeWithFileSizeLimit(blocks: before.count / 512 + 2, rollouts)
        #expect(full.status == 2, "\(full.output)")
        #expect(full.output.contains("qcode: cannot write rollouts file \(out): File too large;"), "\(full.output)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == before)
        let resumed = try await qcode(rollouts)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(try RolloutFile.load(out).map(\.records.count) == [2, 2])
    }

    /// The disk fills while a trained model is saved over an older one: the
    /// older model stays as it was, byte for byte.
    @Test func qvmOnAFullDiskKeepsThePreviousModel() async throws {
        let dir = try tempDirectory("qcode-qvm")
        let data = try mbppFile(dir, tasks: 2)
        let rollouts = dir.appendingPathComponent("rollouts.jsonl").path
        var records: [RolloutRecord] = []
        for task in ["1", "2"] {
            records.append(RolloutRecord(taskId: task, sample: 0, lines: ["def add(a, b):", "    return a + b"], reward: 1))
            records.append(RolloutRecord(taskId: task, sample: 1, lines: ["def add(a, b):", "    return a - b"], testsPassed: 0,
                                         outcome: "failed", reward: 0))
        }
        try RolloutFile.append(records, to: rollouts)
        let model = dir.appendingPathComponent("model.qvm").path
        let train = ["train-qvm", rollouts, "--data", data, "--out", model]
        let first = try await qcode(train)
        #expect(first.status == 0, "\(first.output)")
        let before = try Data(contentsOf: URL(fileURLWithPath: model))
        let full = try await qcodeWithFileSizeLimit(blocks: 16, train + ["--seed", "1", "--epochs", "3"])
        #expect(full.status == 2)
        #expect(full.output.contains("qcode: cannot write \(model): File too large;"), "\(full.output)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: model)) == before)
        #expect(try strayFiles(dir, expected: ["model.qvm", "rollouts.jsonl", "tasks.jsonl"]).isEmpty)
    }
}
