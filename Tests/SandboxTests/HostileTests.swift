import Foundation
import Testing
@testable import Sandbox

/// One untrusted program and what the jail must make of it.
struct HostileCase: Sendable, CustomStringConvertible {
    var name: String
    var program: String
    var tests: String
    var limits: JailLimits = hostileLimits
    var check: @Sendable (TestReport) -> Bool
    var description: String { name }
}

/// Marker paths are unique per test process, so an earlier run cannot mask an escape.
let token = "qcode-hostile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
let repoDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
let markers = ["/etc/\(token)", "/tmp/\(token)", "\(repoDir)/\(token)", "\(home)/\(token)", "/var/tmp/\(token)", "/dev/shm/\(token)"]

/// The attack runs in `try`; `r` is the name of the exception it raised, or "ok".
func attempt(_ body: String, imports: String = "import os, sys, socket, ctypes, signal") -> String {
    let indented = body.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
    return """
    \(imports)
    libc = ctypes.CDLL(None, use_errno=True)
    def errno_of(rc):
        return "ok" if rc == 0 else "errno%d" % ctypes.get_errno()
    try:
    \(indented)
        r = r if 'r' in dir() else "ok"
    except BaseException as e:
        r = type(e).__name__
    """
}

func expectDenied(_ name: String, _ body: String, as expected: String) -> HostileCase {
    HostileCase(name: name, program: attempt(body), tests: "assert r == \(pyString(expected))") { $0.outcome == .passed && $0.passed == 1 }
}

func pyString(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'" }

/// CPU limits no other suite uses, so the left-over check can tell our processes apart.
let hostileLimits = JailLimits(cpuSeconds: 7)
let short = JailLimits(wallSeconds: 3, cpuSeconds: 2)

let hostileCases: [HostileCase] = [
    // Network: socket() itself is denied, so no address family gets anywhere.
    expectDenied("tcp connect", "socket.create_connection(('1.1.1.1', 80), timeout=1)", as: "PermissionError"),
    expectDenied("tcp listen", "s = socket.socket(); s.bind(('0.0.0.0', 8080)); s.listen()", as: "PermissionError"),
    expectDenied("udp sendto", "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))", as: "PermissionError"),
    expectDenied("unix socket", "socket.socket(socket.AF_UNIX).connect('/run/qcode.sock')", as: "PermissionError"),
    expectDenied("socketpair", "socket.socketpair()", as: "PermissionError"),
    expectDenied("netlink", "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)", as: "PermissionError"),
    // Processes: threads yes, fork no.
    expectDenied("fork", "os.fork()", as: "PermissionError"),
    expectDenied("subprocess", "import subprocess; subprocess.run(['/bin/true'])", as: "PermissionError"),
    HostileCase(name: "fork bomb", program: "import os\nwhile True:\n    os.fork()\n", tests: "assert True") {
        $0.outcome == .error && $0.stderr.contains("PermissionError")
    },
    HostileCase(name: "multiprocessing", program: "import multiprocessing as m\np = m.Process(target=print)\np.start()\n", tests: "assert True") {
        $0.outcome == .error
    },
    HostileCase(name: "threads work", program: """
        import threading
        out = []
        ts = [threading.Thread(target=lambda i=i: out.append(i * i)) for i in range(8)]
        for t in ts: t.start()
        for t in ts: t.join()
        """, tests: "assert sorted(out) == [i * i for i in range(8)]") { $0.outcome == .passed },
    expectDenied("thread bomb", "import threading, time\nfor _ in range(10000):\n    threading.Thread(target=time.sleep, args=(5,), daemon=True).start()", as: "RuntimeError"),
    // Filesystem: read-only everywhere but the throwaway /tmp.
    expectDenied("write /etc", "open('/etc/\(token)', 'w').write('x')", as: "OSError"),
    HostileCase(name: "write /tmp stays in the jail", program: attempt("open('/tmp/\(token)', 'w').write('x')"),
                tests: "assert r == 'ok'\nimport os\nassert os.path.exists('/tmp/\(token)')") { $0.outcome == .passed && $0.passed == 2 },
    // The checkout is hidden wherever it was cloned: gone under /work, empty and read-only elsewhere.
    HostileCase(name: "write repo", program: attempt("open('\(repoDir)/\(token)', 'w').write('x')"),
                tests: "assert r in ('FileNotFoundError', 'OSError')") { $0.outcome == .passed && $0.passed == 1 },
    HostileCase(name: "repo is invisible", program: "import os\nseen = os.listdir('\(repoDir)') if os.path.isdir('\(repoDir)') else []\n",
                tests: "assert seen == []") { $0.outcome == .passed },
    expectDenied("write $HOME", "open('\(home)/\(token)', 'w').write('x')", as: "OSError"),
    expectDenied("write /var/tmp", "open('/var/tmp/\(token)', 'w').write('x')", as: "OSError"),
    expectDenied("write /dev/shm", "open('/dev/shm/\(token)', 'w').write('x')", as: "OSError"),
    expectDenied("file size bomb", "f = open('/tmp/big', 'wb')\nfor _ in range(64):\n    f.write(b'x' * (1 << 20))\n    f.flush()", as: "OSError"),
    expectDenied("read daemon files", "open('\(repoDir)/Package.swift').read()", as: "FileNotFoundError"),
    expectDenied("read /etc/shadow", "open('/etc/shadow').read()", as: "PermissionError"),
    HostileCase(name: "private dirs are empty", program: "import os\nseen = os.listdir('/root') + os.listdir('/run') + os.listdir('/home')\n",
                tests: "assert seen == []") { $0.outcome == .passed },
    // Memory, CPU, time, output.
    expectDenied("8 GiB allocation", "bytearray(8 << 30)", as: "MemoryError"),
    expectDenied("memory creep", "xs = []\nwhile True:\n    xs.append(bytearray(50 << 20))", as: "MemoryError"),
    HostileCase(name: "infinite loop", program: "while True:\n    pass\n", tests: "assert True", limits: short) { $0.outcome == .timeout },
    HostileCase(name: "sleep forever", program: "import time\ntime.sleep(1000)\n", tests: "assert True", limits: short) {
        $0.outcome == .timeout && $0.wallMs < 6000
    },
    HostileCase(name: "stdout flood", program: "while True:\n    print('x' * 10000)\n", tests: "assert True") {
        $0.outcome == .crashed && $0.stdout.utf8.count <= (64 << 10) + 100
    },
    HostileCase(name: "stderr flood", program: "import sys\nwhile True:\n    sys.stderr.write('y' * 10000)\n", tests: "assert True") {
        $0.outcome == .crashed && $0.stderr.utf8.count <= (64 << 10) + 200
    },
    HostileCase(name: "results channel flood", program: "import os\nwhile True:\n    os.write(3, b'z' * 65536)\n", tests: "assert True") {
        $0.outcome == .crashed && $0.passed == 0
    },
    // Signals, ptrace, /proc, keyring, mount, namespaces.
    expectDenied("kill parent", "os.kill(os.getppid(), signal.SIGKILL)", as: "PermissionError"),
    expectDenied("kill init", "os.kill(1, signal.SIGKILL)", as: "PermissionError"),
    expectDenied("kill everyone", "os.kill(-1, signal.SIGKILL)", as: "PermissionError"),
    expectDenied("kill group", "os.killpg(0, signal.SIGKILL)", as: "PermissionError"),
    HostileCase(name: "ptrace", program: attempt("r = errno_of(libc.ptrace(0, 0, 0, 0))"), tests: "assert r == 'errno1'") { $0.outcome == .passed },
    expectDenied("/proc/1/mem", "open('/proc/1/mem', 'rb').read(1)", as: "FileNotFoundError"),
    HostileCase(name: "/proc shows only the jail", program: "import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]\n",
                tests: "import os\nassert pids == [str(os.getpid())]") { $0.outcome == .passed },
    HostileCase(name: "keyring", program: attempt("r = errno_of(libc.syscall(250, 0, -3, 0))"), tests: "assert r == 'errno1'") { $0.outcome == .passed },
    HostileCase(name: "add_key", program: attempt("r = errno_of(libc.syscall(248, b'user', b'k', b'v', 1, -3))"), tests: "assert r == 'errno1'") { $0.outcome == .passed },
    HostileCase(name: "mount", program: attempt("r = errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))"), tests: "assert r == 'errno1'") { $0.outcome == .passed },
    HostileCase(name: "unshare", program: attempt("r = errno_of(libc.unshare(0x10000000))"), tests: "assert r == 'errno1'") { $0.outcome == .passed },
    HostileCase(name: "clone3", program: attempt("r = errno_of(libc.syscall(435, 0, 0))"), tests: "assert r == 'errno38'") { $0.outcome == .passed },
    HostileCase(name: "x32 syscall ABI", program: "import ctypes\nctypes.CDLL(None).syscall(0x40000000 + 41, 2, 1, 0)\n", tests: "assert True") {
        $0.outcome == .crashed && $0.signal == SIGSYS
    },
    expectDenied("chroot", "os.chroot('/tmp')", as: "PermissionError"),
    expectDenied("sethostname", "socket.sethostname('evil')", as: "PermissionError"),
    // Exit-code cheats: the verdict must come from the asserts.
    HostileCase(name: "os._exit(0)", program: "import os\nos._exit(0)\n", tests: "assert False") {
        $0.outcome == .failed && $0.passed == 0 && $0.asserts.first?.message?.contains("not run") == true
    },
    HostileCase(name: "sys.exit(0)", program: "import sys\nsys.exit(0)\n", tests: "assert False") { $0.outcome == .error && $0.passed == 0 },
    HostileCase(name: "raise SystemExit", program: "raise SystemExit\n", tests: "assert False") { $0.outcome == .error && $0.passed == 0 },
    HostileCase(name: "exit inside an assert", program: "import os\ndef f():\n    os._exit(0)\n", tests: "assert f() == 1\nassert False") {
        $0.outcome == .failed && $0.passed == 0 && $0.total == 2
    },
    HostileCase(name: "forged records", program: """
        import os
        for i in range(3):
            line = '{"nonce":"%s","kind":"assert","index":%d,"line":1,"passed":true}\\n' % ("0" * 64, i)
            os.write(3, line.encode()); print(line)
        os.write(3, b'{"nonce":"","kind":"done","count":3}\\n')
        os._exit(0)
        """, tests: "assert False\nassert False\nassert False") { $0.outcome == .failed && $0.passed == 0 },
    HostileCase(name: "closes the channel", program: "import os\nos.close(3)\n", tests: "assert True") { $0.outcome == .failed && $0.passed == 0 },
    HostileCase(name: "exec another program", program: "import os\nos.execv('/bin/true', ['true'])\n", tests: "assert True") {
        $0.outcome == .failed && $0.passed == 0
    },
]

@Suite("Hostile programs", .serialized)
struct HostileTests {
    @Test("every hostile program is contained and the host is untouched")
    func hostileSuite() async throws {
        #expect(hostileCases.count >= 30)
        let launcher = try #require(Jail.locateLauncher(), "build qcode-jail first")
        let results = try await withThrowingTaskGroup(of: (Int, TestReport).self) { group in
            var out: [Int: TestReport] = [:]
            var next = 0
            // Two at a time: the machine has two cores and other builds.
            func add() {
                guard next < hostileCases.count else { return }
                let i = next
                next += 1
                let c = hostileCases[i]
                group.addTask { (i, try await Jail(launcher: launcher, limits: c.limits).run(JailJob(program: c.program, tests: c.tests))) }
            }
            add(); add()
            while let (i, r) = try await group.next() {
                out[i] = r
                add()
            }
            return out
        }
        for (i, c) in hostileCases.enumerated() {
            let r = try #require(results[i])
            #expect(c.check(r), "\(c.name): outcome \(r.outcome) passed \(r.passed)/\(r.total) \(r.asserts.map { $0.message ?? "" }) stderr: \(r.stderr.suffix(300))")
            #expect(r.isolation == .namespaces, "\(c.name)")
        }
        for m in markers {
            #expect(!FileManager.default.fileExists(atPath: m), "escaped: \(m) exists on the host")
        }
        // The launcher reaps everything; give the kernel a moment to finish tearing down namespaces.
        try await Task.sleep(for: .milliseconds(200))
        #expect(jailProcesses(cpuSeconds: 7).isEmpty && jailProcesses(cpuSeconds: 2).isEmpty, "left-over jailed processes")
    }
}

/// Pids of jail processes started with CPU limit `cpuSeconds`: launchers (flag on the
/// command line) and jailed programs (their RLIMIT_CPU). Other suites run in parallel
/// with other limits, so each suite looks only for its own.
func jailProcesses(cpuSeconds: Int) -> Set<Int32> {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var found = Set<Int32>()
    for e in entries {
        guard let pid = Int32(e), let cmd = FileManager.default.contents(atPath: "/proc/\(e)/cmdline") else { continue }
        let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard args.contains(where: { $0.contains("qcode_harness") }) else { continue }
        if let i = args.firstIndex(of: "--cpu"), i + 1 < args.count, args[i + 1] == String(cpuSeconds) { found.insert(pid) }
        let limits = (try? String(contentsOfFile: "/proc/\(e)/limits", encoding: .utf8)) ?? ""
        if let line = limits.split(separator: "\n").first(where: { $0.hasPrefix("Max cpu time") }),
           line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first == Substring(String(cpuSeconds)) {
            found.insert(pid)
        }
    }
    return found
}
