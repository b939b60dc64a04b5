import Foundation
import Testing
import TestSupport
@testable import Sandbox

/// A ready pool with `slots` slots, or a failure that says why the pool is unavailable.
func readyPool(slots: Int = 2) async throws -> JailPool {
    let pool = JailPool(jail: try Jail(), slots: slots)
    let state = await pool.waitUntilSettled()
    try #require(state == .ready, "the warm pool did not start: \(state)")
    return pool
}

func warmJail(_ pool: JailPool, limits: JailLimits = .default) throws -> Jail {
    var jail = try Jail(limits: limits)
    jail.pool = pool
    return jail
}

@Suite("Warm pool", .serialized)
struct WarmPoolTests {
    @Test func aWarmRunJudgesLikeAColdOne() async throws {
        let pool = try await readyPool()
        defer { pool.shutdown() }
        let jail = try warmJail(pool)
        let job = JailJob(program: "def sq(x):\n    return x * 2\nprint('dbg')\n",
                          tests: "assert sq(2) == 4\n\nassert sq(3) == 9\nassert sq(0) == 0\n")
        let warm = try await jail.run(job)
        var coldJail = jail
        coldJail.pool = nil
        let cold = try await coldJail.run(job)
        #expect(warm.path == .warm && cold.path == .cold)
        #expect(warm.outcome == .failed && cold.outcome == .failed)
        #expect(warm.asserts == cold.asserts)
        #expect(warm.stdout == "dbg\n" && warm.stdout == cold.stdout)
        #expect(warm.isolation == .namespaces)
        #expect(warm.wallMs > 0 && warm.cpuMs > 0)
    }
}

/// Pids whose parent is `parent` (a pool server's children are its zygotes).
func children(of parent: pid_t) -> Set<pid_t> {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var found = Set<pid_t>()
    for e in entries {
        guard let pid = pid_t(e), let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8),
              let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 2,
              fields[0] != "Z", pid_t(fields[1]) == parent else { continue }
        found.insert(pid)
    }
    return found
}

/// The parent of `pid`, nil once it is gone.
func parent(of pid: pid_t) -> pid_t? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 2 else { return nil }
    return pid_t(fields[1])
}

/// Everything a job can observe of the state it starts in, printed: two jobs
/// that start alike print the same text. Addresses (`id`) of builtins and of
/// preloaded modules' attributes are the zygote's own, so a job that reached
/// the zygote's memory would change them for every job after it.
let inspector = """
import os, sys, gc, signal, resource, threading, builtins, re, math, cmath, collections, functools, heapq, itertools
import operator, string, copy, types, typing, posixpath, warnings, bisect, traceback
fp = {}
fp['env'] = sorted(os.environ.items())
fp['cwd'] = os.getcwd()
u = os.umask(0o22)
os.umask(u)
fp['umask'] = u
fp['tmp'] = sorted(os.listdir('/tmp'))
fp['proc'] = sorted(p for p in os.listdir('/proc') if p.isdigit())
fp['fds'] = sorted(os.listdir('/proc/self/fd'))
fp['ids'] = (os.getpid(), os.getppid(), os.getuid(), os.getgid(), os.getgroups(), os.uname().nodename)
fp['limits'] = [resource.getrlimit(getattr(resource, n)) for n in ('RLIMIT_NOFILE', 'RLIMIT_NPROC', 'RLIMIT_AS', 'RLIMIT_CPU',
                                                                    'RLIMIT_FSIZE', 'RLIMIT_STACK', 'RLIMIT_CORE')]
fp['signals'] = [(int(s), str(signal.getsignal(s))) for s in sorted(signal.valid_signals())
                 if s not in (signal.SIGKILL, signal.SIGSTOP) and s < 32]
fp['blocked'] = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
fp['interpreter'] = (sys.getrecursionlimit(), gc.isenabled(), gc.get_threshold(), sys.getswitchinterval(),
                     sys.get_int_max_str_digits(), sys.flags, sys.argv, sys.path, sys.getdefaultencoding())
fp['modules'] = sorted(sys.modules)
fp['builtins'] = sorted((k, id(v)) for k, v in vars(builtins).items())
fp['attrs'] = [(m.__name__, sorted((k, id(v)) for k, v in vars(m).items()))
               for m in (re, math, cmath, collections, functools, heapq, itertools, operator, string, copy, types, typing,
                         posixpath, bisect, traceback)]
fp['main'] = sorted((k, type(v).__name__) for k, v in vars(sys.modules['__main__']).items())
fp['hooks'] = (sys.excepthook is sys.__excepthook__, sys.displayhook is sys.__displayhook__, threading.excepthook.__name__)
fp['stdio'] = [(type(f).__name__, f.encoding, f.errors, f.fileno(), f.line_buffering) for f in (sys.stdout, sys.stderr)]
fp['warnings'] = [repr(f) for f in warnings.filters]
fp['threads'] = threading.active_count()
# The thread and /tmp budgets are whole: nothing of an earlier job holds part of them.
ts = [threading.Thread(target=lambda: None) for _ in range(40)]
for t in ts: t.start()
for t in ts: t.join()
with open('/tmp/probe', 'wb') as f:
    f.write(b'x' * (12 << 20))
os.remove('/tmp/probe')
fp['budgets'] = 'whole'
print(repr(fp))
"""

/// Jobs that try to leave something for the next job, each aimed at one thing
/// a warm job shares with the jobs after it: the zygote it was forked from, the
/// slot's namespaces, the processes, files and limits around it.
let leftovers: [(name: String, program: String, guards: Bool)] = [
    ("files in /tmp and the work dir, cwd and umask", """
        import os
        open('/tmp/left-behind', 'w').write('x')
        os.makedirs('/tmp/d/e', exist_ok=True)
        os.symlink('/tmp/left-behind', '/tmp/link')
        os.chdir('/tmp/d')
        os.umask(0)
        """, true),
    ("environment", """
        import os
        os.environ['QCODE_LEAK'] = '1'
        os.putenv('QCODE_LEAK2', '1')
        os.environ['PATH'] = '/tmp'
        del os.environ['HOME']
        """, true),
    ("builtins, sys and the preloaded modules monkeypatched", """
        import builtins, sys, re, math, collections, types, typing, posixpath, functools, gc, warnings
        builtins.len = lambda x: 0
        builtins.print = None
        re.compile = None
        math.pi = 3
        collections.Counter = dict
        types.FunctionType = int
        typing.List = None
        posixpath.join = None
        functools.reduce = None
        sys.modules['heapq'] = None
        sys.path.insert(0, '/tmp')
        sys.setrecursionlimit(60)
        sys.setswitchinterval(1.0)
        sys.set_int_max_str_digits(640)
        sys.excepthook = lambda *a: None
        gc.disable()
        gc.set_threshold(1)
        warnings.simplefilter('error')
        """, true),
    ("the harness's own module", """
        import sys
        main = sys.modules['__main__']
        for name in list(vars(main)):
            if not name.startswith('__'):
                setattr(main, name, None)
        """, true),
    ("signal dispositions and the signal mask", """
        import signal
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, signal.SIGUSR1):
            signal.signal(s, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGXCPU, signal.SIGALRM])
        """, true),
    ("signals to the zygote, its job init and everyone", """
        import os, signal
        got = []
        for target in (os.getppid(), 1, 0, -1, 2, 3):
            try:
                os.kill(target, signal.SIGKILL)
                got.append(target)
            except OSError:
                pass
        """, true),
    ("threads that outlive the tests, a fork, a new session", """
        import os, threading, time
        def late():
            time.sleep(0.4)
            open('/tmp/late', 'w').write('x')
            print('LATE OUTPUT')
        for _ in range(20):
            threading.Thread(target=late).start()
        for call in (os.fork, os.setsid, lambda: os.setpgid(0, 0)):
            try:
                call()
            except OSError:
                pass
        """, true),
    ("its inherited fds written over and closed", """
        import os
        for fd in range(0, 64):
            for data in (b'1\\nVT', b'{"nonce":"x","kind":"done"}\\n', b'garbage' * 100):
                try:
                    os.write(fd, data)
                except OSError:
                    pass
        def add(a, b):
            return a + b
        for fd in range(3, 64):
            try:
                os.close(fd)
            except OSError:
                pass
        """, true),
    ("lowered limits, threads and /tmp exhausted", """
        import os, resource, threading, time
        n = 0
        try:
            while True:
                threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
                n += 1
        except RuntimeError:
            pass
        try:
            with open('/tmp/fill', 'wb') as f:
                while True:
                    f.write(b'x' * (1 << 20))
        except OSError:
            pass
        resource.setrlimit(resource.RLIMIT_NOFILE, (8, 8))
        resource.setrlimit(resource.RLIMIT_CPU, (1, 1))
        resource.setrlimit(resource.RLIMIT_AS, (64 << 20, 64 << 20))
        """, true),
    ("raw syscalls: the zygote's memory, other processes, namespaces", """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        got = []
        for path in ('/proc/1/mem', '/proc/%d/mem' % os.getppid(), '/proc/self/mem'):
            try:
                with open(path, 'r+b', 0) as f:
                    f.seek(0x400000)
                    f.write(b'\\xcc')
                got.append(path)
            except (OSError, ValueError):
                pass
        for call in (lambda: libc.unshare(0x20000), lambda: libc.setns(0, 0), lambda: libc.kill(0, 9),
                     lambda: libc.syscall(424, 1, 9, 0, 0), lambda: libc.prctl(1, 0)):
            call()
        """, false),
]

extension WarmPoolTests {
    /// A job leaves nothing for the next: after each attack the next job starts
    /// exactly as the first did, in the same slot, forked from the same zygote,
    /// which no attack killed or changed.
    @Test func aJobLeavesNoTraceForTheNext() async throws {
        let pool = try await readyPool(slots: 1)
        defer { pool.shutdown() }
        let jail = try warmJail(pool)
        let server = try #require(pool.serverPID)
        let zygotes = children(of: server)
        #expect(zygotes.count == 1)
        let check = JailJob(program: inspector, tests: "assert fp['budgets'] == 'whole'")
        let first = try await jail.run(check)
        #expect(first.outcome == .passed && first.path == .warm, "\(first.stderr.suffix(500))")
        #expect(first.stdout.contains("'env': [('HOME', '/tmp')"), "\(first.stdout.prefix(300))")
        for attack in leftovers {
            var attacker = jail
            attacker.guards = attack.guards
            let r = try await attacker.run(JailJob(program: attack.program, tests: "assert True"))
            #expect(r.path == .warm, "\(attack.name) ran cold: the pool lost it")
            let after = try await jail.run(check)
            #expect(after.path == .warm && after.outcome == .passed, "after \(attack.name): \(after.stderr.suffix(500))")
            #expect(after.stdout == first.stdout, "after \(attack.name), the next job started differently:\n\(diff(first.stdout, after.stdout))")
            #expect(!after.stdout.contains("LATE OUTPUT"))
        }
        #expect(children(of: server) == zygotes, "the zygote was replaced: something killed it")
        #expect(pool.state == .ready)
    }

    /// Two jobs in a row get fresh randomness: a fork does not replay the zygote's state.
    @Test func eachJobHasItsOwnRandomness() async throws {
        let pool = try await readyPool(slots: 1)
        defer { pool.shutdown() }
        let jail = try warmJail(pool)
        let job = JailJob(program: "import random, os\nprint(random.random(), os.urandom(8).hex())\n", tests: "assert True")
        let a = try await jail.run(job), b = try await jail.run(job)
        #expect(a.path == .warm && b.path == .warm)
        #expect(!a.stdout.isEmpty && a.stdout != b.stdout)
    }
}

/// The first line where two fingerprints differ, for the failure message.
func diff(_ a: String, _ b: String) -> String {
    let x = a.components(separatedBy: "), ("), y = b.components(separatedBy: "), (")
    for (i, (p, q)) in zip(x, y).enumerated() where p != q { return "#\(i): \(p.prefix(200))\n   now: \(q.prefix(200))" }
    return x.count == y.count ? "(same)" : "lengths \(x.count) vs \(y.count)"
}

@Suite("Warm pool faults", .serialized)
struct WarmPoolFaultTests {
    /// A pool that cannot start says why, and every job runs cold with its usual verdict.
    @Test func anUnavailablePoolRunsEverythingCold() async throws {
        let pool = JailPool(jail: try Jail(), slots: 1, library: "/nonexistent/libpython3.so")
        let state = await pool.waitUntilSettled()
        guard case .unavailable(let why) = state else {
            Issue.record("expected an unavailable pool, got \(state)")
            return
        }
        #expect(why.contains("/nonexistent/libpython3.so"), "\(why)")
        let r = try await warmJail(pool).run(JailJob(program: "x = 2\n", tests: "assert x == 2\nassert x == 3"))
        #expect(r.path == .cold && r.outcome == .failed && r.passed == 1)
    }

    /// A server killed under a job: the job is judged cold, and the pool comes back.
    @Test func aServerKilledMidJobLosesNoJob() async throws {
        let pool = try await readyPool(slots: 1)
        defer { pool.shutdown() }
        let jail = try warmJail(pool)
        let server = try #require(pool.serverPID)
        let job = Task { try await jail.run(JailJob(program: "import time\ntime.sleep(1)\nx = 1\n", tests: "assert x == 1")) }
        try await eventually("the job is running in the pool") { !jailProcesses(cpuSeconds: 5).isEmpty }
        kill(server, SIGKILL)
        let r = try await job.value
        #expect(r.outcome == .passed && r.path == .cold)
        #expect(await pool.waitUntilSettled() == .ready)
        #expect(pool.serverPID != server)
        let again = try await jail.run(JailJob(program: "y = 1\n", tests: "assert y == 1"))
        #expect(again.path == .warm && again.outcome == .passed)
    }

    /// Cancelling a warm job kills it at once; a set prepared with other limits
    /// is let go when a job with other limits comes; nothing is left over.
    @Test func cancellationKillsAWarmJob() async throws {
        let pool = try await readyPool(slots: 1)
        defer { pool.shutdown() }
        let slow = try warmJail(pool, limits: JailLimits(wallSeconds: 60, cpuSeconds: 59))
        let start = ContinuousClock.now
        let task = Task { try await slow.run(JailJob(program: "import time\ntime.sleep(60)\n", tests: "assert True")) }
        try await eventually("the job is running") { !jailProcesses(cpuSeconds: 59).isEmpty }
        task.cancel()
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(ContinuousClock.now - start < .seconds(10))
        // The slot sets up its next job with the cancelled one's limits; a job with others replaces that set.
        let r = try await warmJail(pool).run(JailJob(program: "x = 1\n", tests: "assert x == 1"))
        #expect(r.outcome == .passed && r.path == .warm)
        try await eventually("no process with the cancelled job's limits") { jailProcesses(cpuSeconds: 59).isEmpty }
    }

    /// A zygote killed from outside is replaced; jobs go on.
    @Test func aKilledZygoteIsReplaced() async throws {
        let pool = try await readyPool(slots: 1)
        defer { pool.shutdown() }
        let jail = try warmJail(pool)
        let server = try #require(pool.serverPID)
        let zygote = try #require(children(of: server).first)
        kill(zygote, SIGKILL)
        try await eventually("a new zygote") { let now = children(of: server); return now.count == 1 && !now.contains(zygote) }
        var warm = false
        for _ in 0..<50 where !warm {
            let r = try await jail.run(JailJob(program: "x = 1\n", tests: "assert x == 1"))
            #expect(r.outcome == .passed)
            warm = r.path == .warm
            if !warm { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(warm, "jobs never ran warm again")
        #expect(pool.serverPID == server)
    }

    /// A job whose init ends before its program reports (here: killed from outside)
    /// is the pool's failure, not the program's: the job reruns cold and gets its real
    /// verdict, never one made up from a run that did not finish.
    @Test func anInitThatEndsFirstRerunsCold() async throws {
        let pool = try await readyPool(slots: 1)
        defer { pool.shutdown() }
        let jail = try warmJail(pool, limits: JailLimits(wallSeconds: 60, cpuSeconds: 53))
        // Warm, the program waits to be caught (a preloaded module says it is warm); cold, it does not.
        let job = JailJob(program: "import sys, time\nif 'cmath' in sys.modules:\n    time.sleep(50)\ndef add(a, b):\n    return a + b\n",
                          tests: "assert add(1, 2) == 3\nassert add(2, 2) == 5\n")
        let start = ContinuousClock.now
        let run = Task { try await jail.run(job) }
        var initPID: pid_t?
        try await eventually("the job is running in the pool") {
            initPID = jailProcesses(cpuSeconds: 53).lazy.compactMap(parent(of:)).first
            return initPID != nil
        }
        let server = try #require(pool.serverPID)
        let zygote = try #require(children(of: server).first)
        let victim = try #require(initPID)
        try #require(children(of: zygote) == [victim], "\(victim) is not the job's init")
        kill(victim, SIGKILL)
        let r = try await run.value
        #expect(r.path == .cold)
        #expect(r.outcome == .failed && r.passed == 1 && r.total == 2, "\(r.outcome) \(r.passed)/\(r.total) \(r.stderr.suffix(300))")
        #expect(ContinuousClock.now - start < .seconds(40), "the cold rerun slept: it ran warm again")
        // One such job does not take the slot out of service.
        let again = try await warmJail(pool).run(JailJob(program: "y = 1\n", tests: "assert y == 1"))
        #expect(again.path == .warm && again.outcome == .passed)
    }

    /// A server that dies soon after every start is not restarted forever: the third
    /// in a row makes the pool unavailable, with what the server said on stderr.
    @Test func aPoolThatKeepsDyingYoungBecomesUnavailable() async throws {
        let dir = try tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let real = try Jail().launcher.path
        let fake = dir.appendingPathComponent("qcode-jail")
        try """
            #!/bin/sh
            if [ "$1" = "--serve" ]; then echo "qcode-jail: the zygote hit a wall" >&2; exit 3; fi
            exec '\(real)' "$@"
            """.write(to: fake, atomically: true, encoding: .utf8)
        chmod(fake.path, 0o755)
        let pool = JailPool(jail: try Jail(launcher: fake), slots: 1)
        defer { pool.shutdown() }
        var states: [JailPool.State] = []
        for _ in 0..<4 {
            let state = await pool.waitUntilSettled()
            states.append(state)
            if case .unavailable = state { break }
        }
        #expect(states.dropLast() == [.off, .off], "\(states)")
        guard case .unavailable(let why) = states.last else {
            Issue.record("the pool is \(String(describing: states.last)), not unavailable")
            return
        }
        #expect(why.contains("exited with status 3") && why.contains("the zygote hit a wall"), "\(why)")
        var jail = try Jail(launcher: fake)
        jail.pool = pool
        let r = try await jail.run(JailJob(program: "x = 2\n", tests: "assert x == 2"))
        #expect(r.path == .cold && r.outcome == .passed)
    }

    /// Turns at a full gate go round the lanes: a lane with three waiters does not
    /// go before a lane that came later with one.
    @Test func theGateTakesLanesInTurn() async throws {
        let gate = FairGate(capacity: 1)
        try await gate.acquire(lane: 0)
        let log = Log()
        var tasks: [Task<Void, Error>] = []
        for (lane, name) in [(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1")] as [(UInt64, String)] {
            tasks.append(Task {
                try await gate.acquire(lane: lane)
                await log.add(name)
                await gate.release()
            })
            let expected = tasks.count
            try await eventually("\(name) waits") { await gate.queued == expected }
        }
        await gate.release()
        for t in tasks { try await t.value }
        #expect(await log.entries == ["a1", "b1", "a2", "a3"])
    }

    /// A gate of capacity 2 never has more than two holders.
    @Test func theGateBoundsHolders() async throws {
        let gate = FairGate(capacity: 2)
        let count = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    try await gate.acquire(lane: 0)
                    await count.enter()
                    try await Task.sleep(for: .milliseconds(20))
                    await count.leave()
                    await gate.release()
                }
            }
            try await group.waitForAll()
        }
        #expect(await count.peak == 2)
    }
}

actor Log {
    var entries: [String] = []
    func add(_ s: String) { entries.append(s) }
}

actor Counter {
    var now = 0, peak = 0
    func enter() { now += 1; peak = max(peak, now) }
    func leave() { now -= 1 }
}

/// One ready pool for the tests that run on both paths; it ends with the test process.
let sharedPool = Task { try await readyPool() }

/// A jail on `path`: cold, or warm in the shared pool.
func jail(on path: JailPath, limits: JailLimits = .default) async throws -> Jail {
    path == .cold ? try Jail(limits: limits) : try warmJail(try await sharedPool.value, limits: limits)
}

extension WarmPoolFaultTests {
    /// Runners sharing a pool share its bound, and solves (lanes) take turns: a
    /// solve with one program is not served after all of another's eight.
    @Test func solvesTakeTurnsAtThePool() async throws {
        let pool = try await readyPool(slots: 1)
        defer { pool.shutdown() }
        let a = JailRunner(jail: try warmJail(pool)), b = JailRunner(jail: try warmJail(pool, limits: JailLimits(wallSeconds: 9)))
        let log = Log()
        // a1 holds the only slot long enough for the others to queue behind it, one by one.
        func job(_ name: String) -> JailJob {
            JailJob(program: "import time\ntime.sleep(\(name == "a1" ? 1.5 : 0.2))\nname = '\(name)'\n", tests: "assert True")
        }
        var tasks: [Task<Void, Error>] = []
        // One at a time, so the order they reach the gate is the order they were made in.
        for (i, name) in ["a1", "a2", "a3", "a4"].enumerated() {
            tasks.append(Task { try await JailPool.$lane.withValue(1) { _ = try await a.run(job(name)) }; await log.add(name) })
            if i == 0 {
                try await eventually("a1 runs") { await a.stats.runs == 1 }
            } else {
                try await eventually("\(name) waits") { await pool.gate.queued == i }
            }
        }
        tasks.append(Task { try await JailPool.$lane.withValue(2) { _ = try await b.run(job("b1")) }; await log.add("b1") })
        try await eventually("b1 waits") { await pool.gate.queued == 4 }
        for t in tasks { try await t.value }
        #expect(await log.entries == ["a1", "a2", "b1", "a3", "a4"])
        let (sa, sb) = (await a.stats, await b.stats)
        #expect(sa.warmRuns == 4 && sb.warmRuns == 1)
    }
}

/// `qcode-jail --serve` spoken to directly, as JailPool does.
final class ServerDriver {
    let process = Process()
    let input = Pipe(), output = Pipe()
    private var buffer = Data()

    init(slots: Int = 1) async throws {
        let jail = try Jail()
        let code = try await HarnessCache.shared.compiled(for: jail)
        try #require(!code.library.isEmpty, "no libpython for \(jail.interpreter)")
        process.executableURL = jail.launcher
        process.arguments = ["--serve", "--slots", String(slots), "--libpython", code.library, "--python", jail.interpreter,
                             "--pyversion", code.version]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        send("S", 0, Data(Harness.zygote().utf8))
    }

    func send(_ kind: Character, _ id: Int, _ body: Data) {
        input.fileHandleForWriting.write(Data("\(kind) \(id) \(body.count)\n".utf8) + body)
    }

    func job(_ id: Int, limits: String = "10 5 1073741824 16777216 64 64 65536 33554432", program: String, tests: String) {
        send("J", id, Data("\(limits)\n".utf8) + Harness.frame(nonce: "nonce", job: JailJob(program: program, tests: tests)))
    }

    /// The next frame, or nil at EOF.
    func next() -> PoolServer.Frame? {
        while true {
            if let frame = PoolServer.nextFrame(&buffer) { return frame }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }
}

extension WarmPoolFaultTests {
    /// The server checks every limit of a request as the cold launcher checks its flags,
    /// answers each bad one with an error, feeds a large job in pieces, and ends at a
    /// malformed frame (qcode then runs its jobs cold).
    @Test func theServerRefusesBadRequests() async throws {
        let server = try await ServerDriver()
        defer { if server.process.isRunning { server.process.terminate() } }
        #expect(server.next().map { "\($0.kind) \(String(decoding: $0.body, as: UTF8.self))" } == "P ready")
        let bad = ["nan 5 1073741824 16777216 64 64 65536 33554432", "10 0 1073741824 16777216 64 64 65536 33554432",
                   "10 5 1024 16777216 64 64 65536 33554432", "10 5 1073741824 16777216 64 2 65536 33554432",
                   "10 5 1073741824 16777216 64 64 65536", "inf 5 1073741824 16777216 64 64 65536 33554432",
                   "10 5 99999999999999999999 16777216 64 64 65536 33554432"]
        for (i, limits) in bad.enumerated() {
            server.job(i + 1, limits: limits, program: "x = 1\n", tests: "assert x == 1")
            let reply = try #require(server.next())
            #expect(reply.kind == "E" && reply.id == UInt64(i + 1), "\(limits) was accepted")
            #expect(String(decoding: reply.body, as: UTF8.self).hasPrefix("bad job request"))
        }
        // Two megabytes of program: far more than a pipe holds, written as the judge reads.
        let big = "# " + String(repeating: "x", count: 2 << 20) + "\nx = 1\n"
        server.job(100, program: big, tests: "assert x == 1")
        let reply = try #require(server.next())
        #expect(reply.kind == "R" && reply.id == 100)
        let out = try #require(PoolServer.output(reply.body))
        #expect(String(decoding: out.results, as: UTF8.self).contains(#""kind":"done""#))
        #expect(try LauncherStatus.parse(out.status, launcherStderr: Data()).path == .warm)
        server.send("J", 101, Data("not".utf8)) // a frame, but no limits line in it
        #expect(server.next().map { "\($0.kind) \($0.id)" } == "E 101")
        server.input.fileHandleForWriting.write(Data("garbage without a header line".utf8) + Data(repeating: 65, count: 100))
        #expect(server.next() == nil, "the server kept reading a broken stream")
        server.process.waitUntilExit()
    }

    /// `--serve` needs its interpreter: without one it is a usage error, as a bad flag is.
    @Test(arguments: [["--serve"], ["--serve", "--slots", "0", "--libpython", "/x", "--python", "/y", "--pyversion", "3"],
                      ["--serve", "--slots", "1", "--libpython", "relative", "--python", "/y", "--pyversion", "3"],
                      ["--serve", "--slots", "1", "--python", "/y", "--pyversion", "3"]])
    func serveRefusesBadFlags(_ flags: [String]) async throws {
        let launcher = try #require(Jail.locateLauncher())
        let out = try await Spawner.run(executable: launcher.path, arguments: flags, stdin: Data(), safetyTimeout: 10,
                                        handle: LauncherHandle())
        #expect((out.exitStatus >> 8) & 0xff == 2, "\(flags) was accepted")
    }
}
