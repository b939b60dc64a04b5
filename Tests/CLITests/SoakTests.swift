import Basics
import Daemon
import Foundation
import RPC
import Synchronization
import Testing
import TestSupport

// `make soak` (not part of `make test`): SOAK_REQUESTS requests (default
// 10,000) — status, check, test and solves against a scripted endpoint — from
// SOAK_CLIENTS concurrent clients (default 32) that connect, work and leave,
// against a real `qcode serve` process. Its open fds, threads, RSS and child
// processes are sampled at a baseline (after a warm-up), at peak, half-way
// and after, and must come back: fds, threads and children to the baseline
// once idle pool threads have retired, no child left unreaped (a zombie in
// two samples 100 ms apart), and no RSS growth from the first
// half to the second (the allocator keeps what it once held, so the baseline
// itself is not the bar for memory; a leak would show as growth per request).

enum SoakConfig {
    static let requests = ProcessInfo.processInfo.environment["SOAK_REQUESTS"].flatMap(Int.init)
    static var clients: Int { ProcessInfo.processInfo.environment["SOAK_CLIENTS"].flatMap(Int.init) ?? 32 }
    static var seed: UInt64 { ProcessInfo.processInfo.environment["SOAK_SEED"].flatMap(UInt64.init) ?? 1 }
}

/// What /proc says about a process and its children.
struct ProcessSample: Sendable, CustomStringConvertible {
    var fds = 0
    var threads = 0
    var rssKiB = 0
    var children = 0
    var zombies = 0
    /// Children that have exited and wait to be reaped (for a moment, every child does).
    var zombiePids: Set<Int32> = []

    init() {}

    init?(_ pid: Int32) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Int {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { Int($0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ")[0]) } ?? 0
        }
        threads = field("Threads")
        rssKiB = field("VmRSS")
        fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard Int32(entry) != nil, let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8) else { continue }
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            guard fields.count > 1, Int32(fields[1]) == pid else { continue }
            children += 1
            if fields[0] == "Z" {
                zombies += 1
                zombiePids.insert(Int32(entry)!)
            }
        }
    }

    func max(_ o: ProcessSample) -> ProcessSample {
        var m = self
        m.fds = Swift.max(fds, o.fds)
        m.threads = Swift.max(threads, o.threads)
        m.rssKiB = Swift.max(rssKiB, o.rssKiB)
        m.children = Swift.max(children, o.children)
        m.zombies = Swift.max(zombies, o.zombies)
        return m
    }

    var description: String {
        String(format: "%d fds, %d threads, %.1f MiB RSS, %d children, %d zombies", fds, threads, Double(rssKiB) / 1024, children, zombies)
    }
}

/// Peak of the samples taken while the load runs (every 100 ms).
/// A zombie still there a sample later (100 ms) is a child nobody reaps.
final class PeakSampler: Sendable {
    private struct State {
        var peak = ProcessSample()
        var previousZombies: Set<Int32> = []
        var lingering: Set<Int32> = []
        var samples = 0
    }
    private let state = Mutex(State())
    let pid: Int32
    init(pid: Int32) { self.pid = pid }

    func run() async {
        while !Task.isCancelled {
            if let s = ProcessSample(pid) {
                state.withLock { st in
                    st.peak = st.peak.max(s)
                    st.lingering.formUnion(s.zombiePids.intersection(st.previousZombies))
                    st.previousZombies = s.zombiePids
                    st.samples += 1
                }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    var value: ProcessSample { state.withLock { $0.peak } }
    var count: Int { state.withLock { $0.samples } }
    var lingeringZombies: Set<Int32> { state.withLock { $0.lingering } }
}

/// What the load did, by kind.
actor SoakTally {
    var counts: [String: Int] = [:]
    var failures: [String] = []
    var connections = 0
    func done(_ kind: String) { counts[kind, default: 0] += 1 }
    func failed(_ what: String) { if failures.count < 20 { failures.append(what) } }
    func connected() { connections += 1 }
}

/// One client: connects, makes a few requests, leaves (politely or not), again, until `budget` requests are made.
func soakClient(_ index: Int, budget: Int, socket: String, seed: UInt64, tally: SoakTally) async {
    var rng = SplitMix64(seed: SplitMix64.mix(seed, UInt64(index)))
    func below(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
    var left = budget
    while left > 0 {
        let client: RPCClient
        do {
            client = try RPCClient(socketPath: socket)
            _ = try await client.request(Method.initialize, ["process_id": .int(Int(getpid())), "client_info": ["name": "soak"]])
        } catch {
            await tally.failed("connect: \(error)")
            return
        }
        await tally.connected()
        for _ in 0..<min(left, 1 + below(40)) {
            left -= 1
            let roll = below(100)
            let kind: String, method: String, params: JSONValue
            switch roll {
            case 0..<40:
                (kind, method, params) = ("status", Method.status, [:])
            case 40..<70:
                let source = ["def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a +", "def f(:\n", "x = \(below(1000))\n"][below(4)]
                (kind, method, params) = ("check", Method.check, ["source": .string(source), "tests": "assert add(1, 2) == 3"])
            case 70..<90:
                // 400 variants: the jail runs most, its cache answers the repeats.
                let program = "def add(a, b):\n    return a + b  # variant \(below(400))\n"
                (kind, method, params) = ("test", Method.test, ["program": .string(program), "tests": "assert add(1, 2) == 3\n"])
            default:
                let task = try! JSONValue.encoding(TaskSpec(addTask))
                (kind, method, params) = ("solve", Method.solve, ["task": task, "options": ["method": "greedy", "seed": .int(below(1000))]])
            }
            do {
                let result = try await client.request(method, params)
                if kind == "solve", result["passed"] != 2 { await tally.failed("solve did not pass: \(result)") }
                if kind == "test", result["outcome"] != "passed" { await tally.failed("test did not pass: \(result)") }
                await tally.done(kind)
            } catch {
                await tally.failed("\(kind): \(error)")
            }
        }
        if below(2) == 0 {
            _ = try? await client.request(Method.shutdown)
            client.notify(Method.exit)
        }
        client.close()
    }
}

@Suite(.serialized) struct SoakTests {
    @Test(.enabled(if: SoakConfig.requests != nil, "make soak sets SOAK_REQUESTS"))
    func thousandsOfRequestsFromManyClientsLeakNothing() async throws {
        let total = try #require(SoakConfig.requests), clients = SoakConfig.clients, seed = SoakConfig.seed
        let endpoint = try await FakeEndpoint()
        defer { endpoint.stop() }
        let socket = tempSocketPath()
        let log = try tempDirectory("qcode-soak").appendingPathComponent("daemon.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: qcodeBinary)
        daemon.arguments = ["serve", "--socket", socket, "--endpoint", endpoint.url, "--api", "llama",
                            "--max-concurrent-solves", "2", "--max-queued-solves", String(max(64, clients))]  // no client is ever told "busy"
        daemon.environment = try qcodeEnvironment()
        daemon.standardOutput = try FileHandle(forWritingTo: log)
        daemon.standardError = daemon.standardOutput
        try daemon.run()
        let pid = daemon.processIdentifier
        try await eventually("the daemon to listen") { DaemonLauncher.isRunning(socket: socket) }
        print("soak: \(total) requests from \(clients) clients, seed \(seed), against qcode serve (pid \(pid)) and a scripted endpoint")

        let started = ContinuousClock.now
        func status() async throws -> JSONValue {
            let c = try RPCClient(socketPath: socket)
            defer { c.close() }
            _ = try await c.request(Method.initialize, [:])
            return try await c.request(Method.status)
        }
        /// Idle: only the status connection itself, no solve running, and the sample settled.
        func settled(_ label: String) async throws -> ProcessSample {
            try await eventually("the daemon to go idle (\(label))", within: 120) {
                let s = try await status()
                return s["connections"] == 1 && s["solves_running"] == 0
            }
            // Idle worker threads of the thread pools exit some seconds after the load: settled is
            // eight seconds in a row with the same figures (and no child).
            var last = ProcessSample(pid)!, steady = 0
            try await eventually("the samples to settle (\(label))", within: 180) {
                try await Task.sleep(for: .seconds(1))
                let now = ProcessSample(pid)!
                steady = now.threads == last.threads && now.fds == last.fds && now.children == 0 ? steady + 1 : 0
                last = now
                return steady >= 8
            }
            return last
        }
        func load(_ n: Int, clients: Int, seed: UInt64, tally: SoakTally) async {
            await withTaskGroup(of: Void.self) { group in
                for c in 0..<clients {
                    let share = n / clients + (c < n % clients ? 1 : 0)
                    group.addTask { await soakClient(c, budget: share, socket: socket, seed: seed, tally: tally) }
                }
            }
        }

        // Warm-up: jail harness compiled, caches and pools at working size.
        let warm = SoakTally()
        await load(400, clients: 8, seed: seed &+ 1000, tally: warm)
        let baseline = try await settled("baseline")

        let tally = SoakTally()
        let sampler = PeakSampler(pid: pid)
        let sampling = Task { await sampler.run() }
        await load(total / 2, clients: clients, seed: seed, tally: tally)
        let halfway = try await settled("half-way")
        await load(total - total / 2, clients: clients, seed: seed &+ 1, tally: tally)
        sampling.cancel()
        let after = try await settled("after")
        let seconds = (ContinuousClock.now - started).seconds
        let peak = sampler.value
        let final = try await status()

        let counts = await tally.counts
        let failures = await tally.failures
        print("soak: \(counts.values.reduce(0, +)) requests (" + counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
              .joined(separator: ", ") + ") over \(await tally.connections) connections in \(String(format: "%.0f", seconds)) s")
        print("soak: baseline  \(baseline)")
        print("soak: peak      \(peak) (\(sampler.count) samples; zombies seen in two samples in a row: \(sampler.lingeringZombies.count))")
        print("soak: half-way  \(halfway)")
        print("soak: after     \(after)")
        print("soak: daemon served \(final["requests_served"]?.intValue ?? 0) requests, \(final["solves_completed"]?.intValue ?? 0) solves; "
              + "jail \(final["caches"]?["jail_runs"]?.intValue ?? 0) runs, \(final["caches"]?["jail_cache_hits"]?.intValue ?? 0) cache hits")

        #expect(failures.isEmpty, "\(failures)")
        #expect(counts.values.reduce(0, +) == total)
        #expect(sampler.lingeringZombies.isEmpty && after.zombies == 0, "zombies left unreaped: \(sampler.lingeringZombies)")
        #expect(after.fds == baseline.fds, "fds: baseline \(baseline.fds), after \(after.fds)")
        #expect(after.threads == baseline.threads, "threads: baseline \(baseline.threads), after \(after.threads)")
        #expect(after.children == 0)
        #expect(after.rssKiB - halfway.rssKiB < 16 * 1024, "RSS grew from \(halfway.rssKiB) KiB half-way to \(after.rssKiB) KiB")

        let stop = try await qcode(["stop", "--socket", socket])
        #expect(stop.status == 0, "\(stop.output)")
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
    }
}
