import Foundation
import Testing
import TestSupport
@testable import Sandbox

/// One untrusted program and what the jail must make of it.
struct HostileCase: Sendable, CustomStringConvertible {
    var name: String
    var program: String
    var tests: String
    var limits: JailLimits = hostileLimits
    /// The program interpreter's audit hooks. Off for attacks on the layers below
    /// (they need ctypes), and for forgeries, to show the judge holds without them.
    var guards = true
    /// Run in degraded mode (`--no-userns`).
    var degraded = false
    /// How the judge reads `tests` (pytest-style cases run the same attacks through test functions).
    var kind: TestKind = .asserts
    var check: @Sendable (TestReport, LauncherStatus) -> Bool
    var description: String {
        "\(name)\(degraded ? " [degraded]" : "")\(guards ? "" : " [no guards]")\(kind == .asserts ? "" : " [\(kind.rawValue)]")"
    }
}

/// Marker paths are unique per test process, so an earlier run cannot mask an escape.
let token = "qcode-hostile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
let repoDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
let markers = ["/etc/\(token)", "/tmp/\(token)", "\(repoDir)/\(token)", "\(home)/\(token)", "/var/tmp/\(token)", "/dev/shm/\(token)"]
/// A top-level host directory the jail was never told about: it must not show.
let secretDir = "/qcode-secret-\(token)"

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

/// An attack on a layer below the interpreter: guards off, so ctypes reaches the kernel.
func expectDenied(_ name: String, _ body: String, as expected: String..., degraded: Bool = false,
                  limits: JailLimits = hostileLimits) -> HostileCase {
    HostileCase(name: name, program: attempt(body), tests: "assert r in \(pyList(expected))", limits: limits, guards: false,
                degraded: degraded) { r, _ in
        r.outcome == .passed && r.passed == 1
    }
}

func pyString(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'" }
func pyList(_ xs: [String]) -> String { "[" + xs.map(pyString).joined(separator: ", ") + "]" }

/// CPU limits no other suite uses, so the left-over check can tell our processes apart.
let hostileLimits = JailLimits(cpuSeconds: 7)
let short = JailLimits(wallSeconds: 3, cpuSeconds: 2)

// MARK: - Forged verdicts

/// Tests no honest `add` can pass: any "passed" below is a forged verdict.
let wrongTests = "assert add(2, 2) == 999\nassert False\n"
/// Every fd the program holds beyond 0-2: wherever the harness put its channels.
let channelFds = "import os\ndef channels():\n    return [int(f) for f in os.listdir('/proc/self/fd') if int(f) > 2]\n"

/// Each forgery on both paths, with and without the in-process guards: the judge
/// must hold on its own. A forgery "fails to forge" when nothing passes.
func forgery(_ name: String, _ program: String, tests: String = wrongTests) -> [HostileCase] {
    [false, true].flatMap { degraded in
        [true, false].map { guards in
            HostileCase(name: "forgery: " + name, program: program, tests: tests, guards: guards, degraded: degraded) { r, _ in
                r.passed == 0 && r.outcome != .passed
            }
        }
    }
}

let forgeries: [HostileCase] = [
    // The harness used to call `exec` by name in a namespace sharing the real builtins.
    forgery("builtins.exec patched", "import builtins\nbuiltins.exec = lambda *a, **k: None\nbuiltins.eval = lambda *a, **k: True\n"
            + "def add(a, b):\n    return a + b\n"),
    // The harness used to keep its `emit` in a frame the program could walk up to.
    forgery("frame walk to the harness, then os._exit", """
        import os, sys
        try:
            f = sys._getframe(1)
            while f is not None:
                emit = f.f_locals.get('emit')
                if emit:
                    for i in range(2):
                        emit('"kind":"assert","index":%d,"line":1,"passed":true' % i)
                    emit('"kind":"done","count":2')
                f = f.f_back
        except Exception:
            pass
        os._exit(0)
        """),
    // The harness's list of steps used to be reachable through gc.
    forgery("gc: swap the test steps", """
        import gc
        try:
            for o in gc.get_objects():
                if type(o) is list and o and type(o[0]) is tuple and len(o[0]) == 5:
                    o[:] = [(True, i, 1, compile('pass', '<x>', 'exec'), False) for i in range(len(o))]
        except Exception:
            pass
        def add(a, b):
            return a + b
        """),
    // No Python introspection at all: the nonce out of our own memory, records to every fd.
    forgery("nonce from /proc/self/mem, forged records", channelFds + """
        import re
        nonce = None
        try:
            with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:
                for line in maps:
                    lo, hi = (int(x, 16) for x in line.split()[0].split('-'))
                    if 'rw' not in line.split()[1] or hi - lo > 1 << 26:
                        continue
                    try:
                        mem.seek(lo)
                        m = re.search(rb'"nonce":"([0-9a-f]{64})"', mem.read(hi - lo))
                    except OSError:
                        continue
                    if m:
                        nonce = m.group(1).decode()
                        break
        except OSError:
            pass
        for fd in channels():
            try:
                for i in range(2):
                    os.write(fd, ('{"nonce":"%s","kind":"assert","index":%d,"line":1,"passed":true}\\n' % (nonce, i)).encode())
                os.write(fd, ('{"nonce":"%s","kind":"done","count":2}\\n' % nonce).encode())
            except OSError:
                pass
        def add(a, b):
            return a + b
        """),
    forgery("an object whose __eq__ is always True", "class Yes:\n    def __eq__(self, o):\n        return True\n"
            + "    __ne__ = __eq__\n    def __bool__(self):\n        return True\ndef add(a, b):\n    return Yes()\n"),
    forgery("an int subclass whose __eq__ is always True", "class I(int):\n    def __eq__(self, o):\n        return True\n"
            + "def add(a, b):\n    return I(4)\n"),
    // An evil __sub__/__abs__/__float__ making `abs(f(x) - e) < tol` or isclose hold.
    forgery("arithmetic dunders choosing the difference", """
        class F:
            def __sub__(self, o): return 0.0
            __rsub__ = __sub__
            def __abs__(self): return 0.0
            def __float__(self): return 999.0
            def __lt__(self, o): return True
        def add(a, b):
            return F()
        """, tests: "import math\nassert abs(add(2, 2) - 999) < 0.01\nassert math.isclose(add(2, 2), 999)\nassert add(2, 2) < 0"),
    forgery("builtins.len/sorted/isinstance patched", """
        import builtins
        builtins.len = lambda x: 999
        builtins.sorted = lambda x, **k: 999
        builtins.isinstance = lambda *a: True
        builtins.AssertionError = type('Nothing', (BaseException,), {})
        def add(a, b):
            return [2, 2]
        """, tests: "assert len(add(2, 2)) == 999\nassert sorted(add(2, 2)) == 999\nassert isinstance(add(2, 2), str)\nassert False"),
    // Tried by hand after relinking the launcher (this session): every layer at once, from inside
    // the call, and the call then returns normally instead of exiting.
    forgery("patched builtins, frame walk, /proc/self/mem and done records on fds 3-7 inside the call", """
        import sys, os, builtins
        builtins.len = lambda x: 0
        builtins.isinstance = lambda *a: True
        def add(a, b):
            try:
                f = sys._getframe(1)
                while f is not None:
                    if 'emit' in f.f_locals: f.f_locals['emit']({'ok': True})
                    f = f.f_back
            except Exception:
                pass
            try:
                open('/proc/self/mem', 'rb').read(16)
            except Exception:
                pass
            for fd in range(3, 8):
                try:
                    os.write(fd, b'{"kind":"done","passed":true}\\n')
                except Exception:
                    pass
            return a + b
        """),
    forgery("sys.modules replaced", """
        import sys, types
        fake = types.ModuleType('m')
        fake.eq = lambda a, b: True
        sys.modules['_operator'] = fake
        sys.modules['operator'] = fake
        sys.modules['marshal'] = None
        sys.modules['builtins'].AssertionError = type('Nothing', (BaseException,), {})
        def add(a, b):
            return a + b
        """),
    forgery("a thread forging replies after the harness starts", channelFds + """
        import threading, time
        def spam():
            time.sleep(0.05)
            for _ in range(500):
                for fd in channels():
                    try:
                        os.write(fd, b'2\\nVT' + b'{"nonce":"","kind":"done"}\\n')
                    except OSError:
                        pass
        threading.Thread(target=spam, daemon=True).start()
        def add(a, b):
            time.sleep(0.3)
            return a + b
        """),
    forgery("replies forged before any request", channelFds + """
        for fd in channels():
            try:
                os.write(fd, b'2\\nVT' * 50)
            except OSError:
                pass
        def add(a, b):
            return a + b
        """),
    forgery("closes every channel", channelFds + "for fd in channels():\n    os.close(fd)\ndef add(a, b):\n    return 999\n"),
    forgery("dup2s over every channel", channelFds + """
        r, w = os.pipe()
        for fd in channels():
            if fd not in (r, w):
                os.dup2(w, fd)
        def add(a, b):
            return 999
        """),
    forgery("exits inside the call", "import os\ndef add(a, b):\n    os._exit(0)\n"),
    // Tried by hand against the warm pool: a guessed "done" record on fd 3 and on stdout, then exit.
    forgery("a guessed done record on fd 3 and stdout, then os._exit", """
        import os, sys
        def add(a, b):
            for fd in (1, 3):
                try:
                    os.write(fd, b'{"kind":"done","passed":true}\\n')
                except OSError:
                    pass
            os._exit(0)
        """),
    // ... and a thread that ends the process while the call is still running.
    forgery("a background thread exits the process mid-call", """
        import os, threading, time
        def bg():
            time.sleep(0.2)
            os._exit(0)
        threading.Thread(target=bg).start()
        def add(a, b):
            time.sleep(1)
            return 999
        """),
    // MBPP's asserts use `math.isclose` without importing math: the name must not
    // fall through to the program's global, patched or replaced.
    forgery("math.isclose patched in the program's math", """
        import math
        math.isclose = lambda *a, **k: True
        def add(a, b):
            return 0
        """, tests: "assert math.isclose(add(2, 2), 999, rel_tol=0.001)\nassert math.isclose(add(2, 2), 998)"),
    forgery("a global named math that is not the module", """
        class M:
            isclose = staticmethod(lambda *a, **k: True)
        math = M()
        def add(a, b):
            return 0
        """, tests: "assert math.isclose(add(2, 2), 999, rel_tol=0.001)\nassert math.isclose(add(2, 2), 998)"),
].flatMap { $0 }

// MARK: - In-process guards (defence in depth)

func guarded(_ name: String, _ body: String, as expected: String...) -> HostileCase {
    let program = "import os, sys, gc\ntry:\n" + body.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
        + "\n    r = 'ok'\nexcept BaseException as e:\n    r = type(e).__name__\n"
    return HostileCase(name: "guard: " + name, program: program, tests: "assert r in \(pyList(expected))") { r, _ in
        r.outcome == .passed && r.passed == 1
    }
}

let guards: [HostileCase] = [
    guarded("sys._getframe", "sys._getframe(1)", as: "ValueError"),
    guarded("traceback frames", "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    e.__traceback__.tb_frame", as: "AttributeError"),
    guarded("generator frames", "def g():\n    yield 1\ng().gi_frame", as: "AttributeError"),
    guarded("sys._current_frames", "sys._current_frames()", as: "PermissionError"),
    guarded("settrace", "sys.settrace(lambda *a: None)", as: "PermissionError"),
    guarded("setprofile", "sys.setprofile(lambda *a: None)", as: "PermissionError"),
    guarded("gc.get_objects", "gc.get_objects()", as: "PermissionError"),
    guarded("gc.get_referrers", "gc.get_referrers(sys)", as: "PermissionError"),
    guarded("ctypes", "import ctypes", as: "ImportError"),
    guarded("/proc/self/mem", "open('/proc/self/mem', 'rb')", as: "PermissionError"),
    guarded("/proc/self/maps", "open('/proc/self/maps')", as: "PermissionError"),
    guarded("/proc/self/mem through a symlink", "os.symlink('/proc/self/mem', '/tmp/m')\nopen('/tmp/m', 'rb')", as: "PermissionError"),
    HostileCase(name: "guard: the standard library still works", program: """
        import collections, dataclasses, enum, logging, typing, warnings, functools
        P = collections.namedtuple('P', 'a b')
        class E(enum.Enum):
            A = 1
        @dataclasses.dataclass
        class D:
            x: int = 1
        T = typing.TypeVar('T')
        logging.warning('logged')
        warnings.warn('warned')
        r = (P(1, 2).b, E.A.value, D().x, functools.reduce(lambda a, b: a + b, [1, 2]))
        """, tests: "assert r == (2, 1, 1, 3)") { r, _ in r.outcome == .passed },
    // The tests use the judge's builtins, whatever the program did to its own.
    HostileCase(name: "guard: patched builtins do not reach the tests", program: "import builtins\nbuiltins.len = lambda x: 0\n"
                + "builtins.sorted = lambda x: [9]\n", tests: "assert len([1, 2]) == 2\nassert sorted([2, 1]) == [1, 2]") { r, _ in
        r.outcome == .passed && r.passed == 2
    },
]

// MARK: - Layers below the interpreter (guards off)

let layers: [HostileCase] = [
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
    HostileCase(name: "fork bomb", program: "import os\nwhile True:\n    os.fork()\n", tests: "assert True") { r, _ in
        r.outcome == .error && r.stderr.contains("PermissionError")
    },
    HostileCase(name: "multiprocessing", program: "import multiprocessing as m\np = m.Process(target=print)\np.start()\n",
                tests: "assert True") { r, _ in r.outcome == .error },
    // A warm job's processes are forks, not execs: nothing close-on-exec closes for them.
    // A leaked status pipe to the launcher would let a program forge its own exit.
    HostileCase(name: "the program holds the harness's fds and no other", program: """
        import os
        fds, kinds = [], []
        for f in sorted(os.listdir('/proc/self/fd'), key=int):
            try:
                kinds.append(os.readlink('/proc/self/fd/' + f).split(':')[0])
                fds.append(f)
            except OSError:
                pass  # the listing's own fd, closed by now
        """, tests: "assert fds == ['0', '1', '2', '4', '5']\nassert kinds == ['/dev/null', 'pipe', 'pipe', 'pipe', 'pipe']") { r, _ in
        r.outcome == .passed && r.passed == 2
    },
    HostileCase(name: "threads work", program: """
        import threading
        out = []
        ts = [threading.Thread(target=lambda i=i: out.append(i * i)) for i in range(8)]
        for t in ts: t.start()
        for t in ts: t.join()
        """, tests: "assert sorted(out) == [i * i for i in range(8)]") { r, _ in r.outcome == .passed },
    expectDenied("thread bomb", "import threading, time\nfor _ in range(10000):\n    threading.Thread(target=time.sleep, args=(5,), daemon=True).start()",
                 as: "RuntimeError"),
    // Filesystem: an allow-listed read-only root; only the throwaway /tmp is writable.
    expectDenied("write /etc", "open('/etc/\(token)', 'w').write('x')", as: "OSError"),
    HostileCase(name: "write /tmp stays in the jail", program: attempt("open('/tmp/\(token)', 'w').write('x')"),
                tests: "assert r == 'ok'\nimport os\nassert os.path.exists('/tmp/\(token)')", guards: false) { r, _ in
        r.outcome == .passed && r.passed == 2
    },
    expectDenied("write repo", "open('\(repoDir)/\(token)', 'w').write('x')", as: "FileNotFoundError", "OSError"),
    expectDenied("read daemon files", "open('\(repoDir)/Package.swift').read()", as: "FileNotFoundError"),
    expectDenied("write $HOME", "open('\(home)/\(token)', 'w').write('x')", as: "FileNotFoundError", "OSError"),
    expectDenied("write /var/tmp", "open('/var/tmp/\(token)', 'w').write('x')", as: "FileNotFoundError"),
    expectDenied("write /dev/shm", "open('/dev/shm/\(token)', 'w').write('x')", as: "FileNotFoundError"),
    expectDenied("read /etc/shadow", "open('/etc/shadow').read()", as: "FileNotFoundError"),
    expectDenied("a new top-level host directory", "open('\(secretDir)/secret.txt').read()", as: "FileNotFoundError"),
    HostileCase(name: "unlisted host directories do not exist", program: """
        import os
        seen = [d for d in ['/root', '/home', '/run', '/work', '/srv', '/opt', '/mnt', '/media', '/var', '/sys', '/boot',
                            '\(repoDir)', '\(secretDir)', '/dev/shm', '/dev/pts'] if os.path.exists(d)]
        """, tests: "assert seen == []") { r, _ in r.outcome == .passed },
    // Host devices: only null, zero, full, random and urandom exist.
    expectDenied("/dev/ptmx", "open('/dev/ptmx', 'r+b')", as: "FileNotFoundError"),
    expectDenied("a host disk", "open('/dev/vda', 'rb')", as: "FileNotFoundError"),
    HostileCase(name: "/dev holds five devices", program: "import os\ndevs = sorted(os.listdir('/dev'))\n"
                + "open('/dev/null', 'w').write('x')\nz = open('/dev/zero', 'rb').read(2)\nu = len(open('/dev/urandom', 'rb').read(4))\n",
                tests: "assert devs == ['fd', 'full', 'null', 'random', 'stderr', 'stdin', 'stdout', 'urandom', 'zero']\n"
                + "assert z == b'\\x00\\x00' and u == 4") { r, _ in r.outcome == .passed && r.passed == 2 },
    HostileCase(name: "every mount is nosuid, nodev but the five devices, read-only but /tmp", program: """
        mounts = []
        for line in open('/proc/self/mountinfo'):
            f = line.split()
            mounts.append((f[4], set(f[5].split(','))))
        bad = [m for m, o in mounts if 'nosuid' not in o
               or ('nodev' not in o and m not in ('/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom'))
               or ('ro' not in o and m not in ('/tmp', '/proc', '/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom'))]
        """, tests: "assert bad == []\nassert len(mounts) >= 8") { r, _ in r.outcome == .passed && r.passed == 2 },
    // Memory, CPU, time, output.
    expectDenied("8 GiB allocation", "bytearray(8 << 30)", as: "MemoryError"),
    // Against a quarter of the default limit: touching every page of 1 GiB took 7 s of CPU on a
    // loaded 2-core machine (1.3 s idle) and the CPU or wall limit ended it before the MemoryError.
    expectDenied("memory creep", "xs = []\nwhile True:\n    xs.append(bytearray(16 << 20))", as: "MemoryError",
                 limits: JailLimits(cpuSeconds: hostileLimits.cpuSeconds, memoryBytes: 256 << 20)),
    expectDenied("file size bomb", "f = open('/tmp/big', 'wb')\nfor _ in range(64):\n    f.write(b'x' * (1 << 20))\n    f.flush()", as: "OSError"),
    // memfd pages live outside RLIMIT_AS: ~900 MiB past a 1 GiB limit before this fix.
    HostileCase(name: "memfd beyond the address-space limit", program: attempt("""
        fd = os.memfd_create('m')
        chunk = b'x' * (64 << 20)
        for _ in range(24):
            os.write(fd, chunk)
        """), tests: "assert r in ('PermissionError', 'OSError', 'MemoryError')", guards: false) { r, st in
        st.memoryFence == "cgroup" ? (r.passed == 1 || r.outcome == .crashed) : (r.outcome == .passed && r.stdout.isEmpty)
    },
    // Without a cgroup, pipe buffers are the other way past RLIMIT_AS: no growth, fewer fds.
    HostileCase(name: "pipe buffers stay small without a memory cgroup", program: attempt("import fcntl, resource\n"
                + "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\nr, w = os.pipe()\nfcntl.fcntl(w, 1031, 1 << 20)"),
                tests: "assert True", guards: false) { r, st in
        st.memoryFence == "cgroup" || (r.outcome == .passed && r.stdout == "32\n")
    },
    HostileCase(name: "pipe buffer growth is refused without a memory cgroup",
                program: attempt("import fcntl\nr, w = os.pipe()\nfcntl.fcntl(w, 1031, 1 << 20)"),
                tests: "assert r == 'PermissionError'", guards: false) { r, st in st.memoryFence == "cgroup" || r.outcome == .passed },
    HostileCase(name: "infinite loop", program: "while True:\n    pass\n", tests: "assert True", limits: short) { r, _ in r.outcome == .timeout },
    HostileCase(name: "sleep forever", program: "import time\ntime.sleep(1000)\n", tests: "assert True", limits: short) { r, _ in
        r.outcome == .timeout && r.wallMs < 6000
    },
    HostileCase(name: "stdout flood", program: "while True:\n    print('x' * 10000)\n", tests: "assert True") { r, _ in
        r.outcome == .crashed && r.stdout.utf8.count <= (64 << 10) + 100
    },
    HostileCase(name: "stderr flood", program: "import sys\nwhile True:\n    sys.stderr.write('y' * 10000)\n", tests: "assert True") { r, _ in
        r.outcome == .crashed && r.stderr.utf8.count <= (64 << 10) + 200
    },
    HostileCase(name: "flood of the channel to the judge", program: channelFds + "while True:\n    for fd in channels():\n"
                + "        try:\n            os.write(fd, b'z' * 65536)\n        except OSError:\n            pass\n",
                tests: "assert True", limits: short) { r, _ in r.passed == 0 && r.outcome != .passed },
    // Signals, ptrace, /proc, keyring, mount, namespaces.
    expectDenied("kill parent", "os.kill(os.getppid(), signal.SIGKILL)", as: "PermissionError"),
    expectDenied("kill init", "os.kill(1, signal.SIGKILL)", as: "PermissionError"),
    expectDenied("kill everyone", "os.kill(-1, signal.SIGKILL)", as: "PermissionError"),
    expectDenied("kill group", "os.killpg(0, signal.SIGKILL)", as: "PermissionError"),
    expectDenied("F_SETOWN", "import fcntl\nr, w = os.pipe()\nfcntl.fcntl(r, fcntl.F_SETOWN, 1)", as: "PermissionError"),
    expectDenied("F_SETSIG", "import fcntl\nr, w = os.pipe()\nfcntl.fcntl(r, 10, signal.SIGKILL)", as: "PermissionError"),
    expectDenied("F_SETOWN_EX", "import fcntl\nr, w = os.pipe()\nfcntl.fcntl(r, 15, bytes(8))", as: "PermissionError"),
    expectDenied("FIOSETOWN", "import fcntl\nr, w = os.pipe()\nfcntl.ioctl(r, 0x8901, bytes(4))", as: "PermissionError"),
    expectDenied("prlimit on another process", "import resource\nresource.prlimit(1, resource.RLIMIT_CPU)", as: "PermissionError"),
    HostileCase(name: "ptrace", program: attempt("r = errno_of(libc.ptrace(0, 0, 0, 0))"), tests: "assert r == 'errno1'", guards: false) { r, _ in
        r.outcome == .passed
    },
    expectDenied("/proc/1/mem", "open('/proc/1/mem', 'rb').read(1)", as: "FileNotFoundError"),
    HostileCase(name: "/proc shows only the program", program: "import os\nonly_me = [p for p in os.listdir('/proc') if p.isdigit()] == [str(os.getpid())]\n",
                tests: "assert only_me") { r, _ in r.outcome == .passed },
    HostileCase(name: "keyring", program: attempt("r = errno_of(libc.syscall(250, 0, -3, 0))"), tests: "assert r == 'errno1'", guards: false) { r, _ in
        r.outcome == .passed
    },
    HostileCase(name: "add_key", program: attempt("r = errno_of(libc.syscall(248, b'user', b'k', b'v', 1, -3))"), tests: "assert r == 'errno1'",
                guards: false) { r, _ in r.outcome == .passed },
    HostileCase(name: "mount", program: attempt("r = errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))"), tests: "assert r == 'errno1'",
                guards: false) { r, _ in r.outcome == .passed },
    HostileCase(name: "unshare", program: attempt("r = errno_of(libc.unshare(0x10000000))"), tests: "assert r == 'errno1'", guards: false) { r, _ in
        r.outcome == .passed
    },
    HostileCase(name: "clone3", program: attempt("r = errno_of(libc.syscall(435, 0, 0))"), tests: "assert r == 'errno38'", guards: false) { r, _ in
        r.outcome == .passed
    },
    HostileCase(name: "x32 syscall ABI", program: "import ctypes\nctypes.CDLL(None).syscall(0x40000000 + 41, 2, 1, 0)\n", tests: "assert True",
                guards: false) { r, _ in r.outcome == .crashed && r.signal == SIGSYS },
    // A foreign-ABI call used to kill only its thread: the run then hung until the wall clock.
    HostileCase(name: "x32 syscall from a thread kills the process", program: """
        import ctypes, threading, time
        t = threading.Thread(target=lambda: ctypes.CDLL(None).syscall(0x40000000 + 39))
        t.start()
        t.join()
        time.sleep(30)
        """, tests: "assert True", guards: false) { r, _ in r.outcome == .crashed && r.signal == SIGSYS && r.wallMs < 5000 },
    HostileCase(name: "i386 int 0x80 from a thread kills the process", program: """
        import ctypes, mmap, threading, time
        code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])  # mov eax, 20 (getpid); int 0x80; ret
        buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        buf.write(code)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        fn = ctypes.CFUNCTYPE(ctypes.c_int)(addr)
        t = threading.Thread(target=fn)
        t.start()
        t.join()
        time.sleep(30)
        """, tests: "assert True", guards: false) { r, _ in r.outcome == .crashed && r.signal == SIGSYS && r.wallMs < 5000 },
    expectDenied("chroot", "os.chroot('/tmp')", as: "PermissionError"),
    expectDenied("sethostname", "socket.sethostname('evil')", as: "PermissionError"),
    // Exit-code cheats: the verdict must come from the asserts.
    HostileCase(name: "os._exit(0)", program: "import os\nos._exit(0)\n", tests: "assert False") { r, _ in
        r.outcome == .failed && r.passed == 0 && r.asserts.first?.message?.contains("not run") == true
    },
    HostileCase(name: "sys.exit(0)", program: "import sys\nsys.exit(0)\n", tests: "assert False") { r, _ in r.outcome == .error && r.passed == 0 },
    HostileCase(name: "raise SystemExit", program: "raise SystemExit\n", tests: "assert False") { r, _ in r.outcome == .error && r.passed == 0 },
    HostileCase(name: "exit inside an assert", program: "import os\ndef f():\n    os._exit(0)\n", tests: "assert f() == 1\nassert False") { r, _ in
        r.outcome == .failed && r.passed == 0 && r.total == 2
    },
    HostileCase(name: "exec another program", program: "import os\nos.execv('/bin/true', ['true'])\n", tests: "assert True") { r, _ in
        r.outcome == .failed && r.passed == 0
    },
]

// MARK: - Degraded mode (no user namespaces)

let degradedCases: [HostileCase] = [
    expectDenied("tcp connect", "socket.create_connection(('1.1.1.1', 80), timeout=1)", as: "PermissionError", degraded: true),
    expectDenied("fork", "os.fork()", as: "PermissionError", degraded: true),
    expectDenied("kill parent", "os.kill(os.getppid(), signal.SIGKILL)", as: "PermissionError", degraded: true),
    expectDenied("F_SETOWN", "import fcntl\nr, w = os.pipe()\nfcntl.fcntl(r, fcntl.F_SETOWN, os.getppid())", as: "PermissionError", degraded: true),
    expectDenied("F_SETSIG", "import fcntl\nr, w = os.pipe()\nfcntl.fcntl(r, 10, signal.SIGKILL)", as: "PermissionError", degraded: true),
    expectDenied("ptrace the launcher's memory", "open('/proc/%d/mem' % os.getppid(), 'rb').read(1)", as: "PermissionError", "FileNotFoundError",
                 degraded: true),
    expectDenied("memfd", "os.memfd_create('m')", as: "PermissionError", degraded: true),
    // Landlock (where the kernel has it) gives degraded mode the same allow-list.
    HostileCase(name: "filesystem allow-list", program: attempt("""
        out = []
        for p in ['/dev/ptmx', '/etc/passwd', '\(secretDir)/secret.txt', '\(repoDir)/Package.swift', '/tmp/\(token)-deg', '/var/tmp/\(token)-deg']:
            try:
                open(p, 'r+b' if p.startswith('/dev') else 'r' if 'secret' in p or p.endswith('.swift') or p == '/etc/passwd' else 'w')
                out.append(p)
            except OSError:
                pass
        open('mine.txt', 'w').write('x')
        r = out
        """), tests: "assert r == []", guards: false, degraded: true) { r, st in st.landlock == 0 || r.outcome == .passed },
    HostileCase(name: "x32 syscall from a thread kills the process", program: """
        import ctypes, threading, time
        t = threading.Thread(target=lambda: ctypes.CDLL(None).syscall(0x40000000 + 39))
        t.start()
        t.join()
        time.sleep(30)
        """, tests: "assert True", guards: false, degraded: true) { r, _ in r.outcome == .crashed && r.signal == SIGSYS && r.wallMs < 5000 },
    HostileCase(name: "a uid of its own", program: "import os\nuid = os.getuid()\n", tests: "assert uid not in (0, 65534)", degraded: true) { r, st in
        getuid() != 0 || (r.outcome == .passed && st.programUid != 65534 && st.programUid != 0)
    },
]

let hostileCases = forgeries + guards + layers + degradedCases + testStyleCases

@Suite("Hostile programs", .serialized)
struct HostileTests {
    /// Both ways a job can run: cold (a jail set up for it) and warm (forked from a
    /// pool's zygote). Degraded mode has no warm path: those cases run cold in both.
    @Test("every hostile program is contained, no verdict is forged, and the host is untouched",
          arguments: [JailPath.cold, .warm])
    func hostileSuite(_ path: JailPath) async throws {
        #expect(hostileCases.count >= 100)
        // Jail processes another suite left behind (a failed test's pool) are its failure, not this one's.
        let foreign = leftOvers()
        let launcher = try #require(Jail.locateLauncher(), "build qcode-jail first")
        try FileManager.default.createDirectory(atPath: secretDir, withIntermediateDirectories: true)
        try "secret".write(toFile: secretDir + "/secret.txt", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: secretDir) }
        let pool: JailPool? = path == .warm ? try await readyPool() : nil
        defer { pool?.shutdown() }
        let cases = path == .warm ? hostileCases.filter { !$0.degraded } : hostileCases
        let results = try await withThrowingTaskGroup(of: (Int, TestReport, LauncherStatus).self) { group in
            var out: [Int: (TestReport, LauncherStatus)] = [:]
            var next = 0
            // Two at a time: the machine has two cores and other builds.
            func add() {
                guard next < cases.count else { return }
                let i = next
                next += 1
                let c = cases[i]
                group.addTask {
                    var jail = try Jail(launcher: launcher, limits: c.limits)
                    jail.guards = c.guards
                    jail.pool = pool
                    let (r, st) = try await jail.runDetailed(JailJob(program: c.program, tests: c.tests, kind: c.kind),
                                                             noUserNamespaces: c.degraded)
                    return (i, r, st)
                }
            }
            add(); add()
            while let (i, r, st) = try await group.next() {
                out[i] = (r, st)
                add()
            }
            return out
        }
        for (i, c) in cases.enumerated() {
            let (r, st) = try #require(results[i])
            #expect(c.check(r, st), "\(c): outcome \(r.outcome) passed \(r.passed)/\(r.total) \(r.asserts.map { $0.message ?? "" }) stderr: \(r.stderr.suffix(300))")
            #expect(r.isolation == (c.degraded ? .degraded : .namespaces), "\(c)")
            #expect(r.path == (c.degraded ? .cold : path), "\(c) ran \(r.path.map(\.rawValue) ?? "?")")
        }
        for m in markers + markers.map({ $0 + "-fixture" }) + ["\(repoDir)/Sources/\(token)"] {
            #expect(!FileManager.default.fileExists(atPath: m), "escaped: \(m) exists on the host")
        }
        // Stopping the pool ends its zygotes and the jobs it set up ahead.
        pool?.shutdown()
        // The launcher reaps everything; the kernel may take a moment to finish tearing down namespaces.
        try await eventually("no left-over jailed processes") { leftOvers().isSubset(of: foreign) }
    }

    /// The jailed processes the hostile cases could leave: their jobs (CPU limits 7 and 2 s) and pool servers.
    func leftOvers() -> Set<Int32> {
        jailProcesses(cpuSeconds: 7).union(jailProcesses(cpuSeconds: 2)).union(poolProcesses())
    }

    /// The launcher's numeric flags: only finite, bounded values (`--wall nan` used to disable the wall clock).
    @Test(arguments: [["--wall", "nan"], ["--wall", "inf"], ["--wall", "-1"], ["--wall", "1e9"], ["--cpu", "0"], ["--cpu", "5x"],
                      ["--mem", "-1"], ["--mem", "99999999999999999999"], ["--tmpfs", "0"], ["--nofile", "2"], ["--status-fd", "3"],
                      ["--judge", "0"], ["--ro", "relative"], ["--ro", "/usr/../etc"]])
    func launcherRefusesBadFlags(_ flags: [String]) async throws {
        let launcher = try #require(Jail.locateLauncher())
        let out = try await Spawner.run(executable: launcher.path, arguments: flags + ["--", "/bin/true"], stdin: Data(),
                                        safetyTimeout: 10, handle: LauncherHandle())
        #expect((out.exitStatus >> 8) & 0xff == 2, "\(flags) was accepted")
        #expect(String(decoding: out.stderr, as: UTF8.self).contains("usage"))
    }

    /// `--ro DIR` shows one more host directory, read-only; one the setup uid cannot reach
    /// sends the run to degraded mode with the reason, and the job (stdin) still arrives.
    @Test func extraReadOnlyDirectories() async throws {
        let launcher = try #require(Jail.locateLauncher())
        let open = "/var/tmp/qcode-ro-\(token)", closed = "/var/tmp/qcode-private-\(token)"
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: closed + "/inner", withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: closed)
        defer { try? FileManager.default.removeItem(atPath: open); try? FileManager.default.removeItem(atPath: closed) }
        try FileManager.default.copyItem(atPath: "/bin/cat", toPath: open + "/cat")
        let input = Data("the job\n".utf8)
        let shown = try await Spawner.run(executable: launcher.path, arguments: ["--ro", open, "--", open + "/cat"], stdin: input,
                                          safetyTimeout: 10, handle: LauncherHandle())
        let st = try LauncherStatus.parse(shown.status, launcherStderr: shown.stderr)
        #expect(st.isolation == .namespaces && st.exitCode == 0 && shown.stdout == input, "\(st.setupError)")
        let out = try await Spawner.run(executable: launcher.path, arguments: ["--ro", closed + "/inner", "--", "/bin/cat"], stdin: input,
                                        safetyTimeout: 10, handle: LauncherHandle())
        let fallback = try LauncherStatus.parse(out.status, launcherStderr: out.stderr)
        if getuid() == 0 {
            #expect(fallback.isolation == .degraded && fallback.degradedReason.contains("--ro"))
            #expect(out.stdout == input, "the degraded retry lost the job on stdin")
        }
    }

    /// A missing or unusable cgroup never fails a run: the rlimit fence takes over.
    @Test func aMissingCgroupFallsBackToRlimits() async throws {
        let launcher = try #require(Jail.locateLauncher())
        let out = try await Spawner.run(executable: launcher.path, arguments: ["--cgroup", "/nonexistent-qcode-cgroup", "--", "/bin/true"],
                                        stdin: Data(), safetyTimeout: 10, handle: LauncherHandle())
        let st = try LauncherStatus.parse(out.status, launcherStderr: out.stderr)
        #expect(st.ran && st.exitCode == 0 && st.memoryFence == "rlimit")
    }

    /// The fence in force is the one this host can offer: a cgroup v2 memory controller
    /// (as root), else rlimits with memfd denied.
    @Test func theMemoryFenceMatchesTheHost() async throws {
        let (_, st) = try await Jail().runDetailed(JailJob(program: "x = 1\n", tests: "assert x == 1"))
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        let root = mounts.split(separator: "\n").first { $0.contains(" - cgroup2 ") }.map { String($0.split(separator: " ")[4]) }
        let controllers = root.flatMap { try? String(contentsOfFile: $0 + "/cgroup.controllers", encoding: .utf8) } ?? ""
        let offered = getuid() == 0 && controllers.split(whereSeparator: \.isWhitespace).contains("memory")
        #expect(st.memoryFence == (offered ? "cgroup" : "rlimit"))
    }

    /// What the program sees at `/`: the allow-list and nothing else. (Printed for the record.)
    @Test func rootListing() async throws {
        let r = try await Jail().run(JailJob(program: "import os\nroot = sorted(os.listdir('/'))\netc = sorted(os.listdir('/etc'))\nprint(root, etc)\n",
                                             tests: "assert set(root) <= {'bin', 'dev', 'etc', 'lib', 'lib32', 'lib64', 'libx32', 'proc', 'sbin', 'tmp', 'usr'}\n"
                                                 + "assert {'usr', 'tmp', 'dev', 'proc', 'etc'} <= set(root)\n"
                                                 + "assert set(etc) <= {'alternatives', 'group', 'hostname', 'hosts', 'ld.so.cache', 'localtime', 'passwd'}"))
        print("jail root:", r.stdout)
        #expect(r.outcome == .passed && r.passed == 3, "\(r.asserts.map { $0.message ?? "" })")
    }

    /// Concurrent degraded runs never share a uid, cannot reach one another's memory
    /// or work dir, and leave no work dir behind.
    @Test func degradedRunsAreKeptApart() async throws {
        guard getuid() == 0 else { return } // distinct uids need root; as a user everything runs as that user
        let jail = try Jail(limits: JailLimits(wallSeconds: 20, cpuSeconds: 11))
        let sleeper = Task { try await jail.runDetailed(JailJob(program: "import time\ntime.sleep(8)\n", tests: "assert True"), noUserNamespaces: true) }
        defer { sleeper.cancel() }
        // Find the sleeper's program and work dir from the host.
        var victim: (pid: Int32, uid: UInt32)?
        for _ in 0..<100 where victim == nil {
            try await Task.sleep(for: .milliseconds(50))
            for pid in jailProcesses(cpuSeconds: 11) {
                guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                      let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
                      let uid = line.split(separator: "\t").dropFirst().first.flatMap({ UInt32($0) }), uid >= 1_879_048_192,
                      let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"), cwd.hasPrefix("/tmp/qcode-jail-")
                else { continue }
                victim = (pid, uid)
            }
        }
        let v = try #require(victim, "the sleeping jail did not show up")
        let workdir = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(v.pid)/cwd")
        let attacker = """
            import os
            got = []
            for what, f in [('mem', lambda: open('/proc/\(v.pid)/mem', 'rb').read(1)),
                            ('environ', lambda: open('/proc/\(v.pid)/environ', 'rb').read()),
                            ('workdir', lambda: open('\(workdir)/planted', 'w').write('x')),
                            ('signal', lambda: os.kill(\(v.pid), 9))]:
                try:
                    f()
                    got.append(what)
                except OSError:
                    pass
            uid = os.getuid()
            """
        var attacking = jail
        attacking.guards = false
        let (r, st) = try await attacking.runDetailed(JailJob(program: attacker, tests: "assert got == []"), noUserNamespaces: true)
        #expect(r.outcome == .passed, "\(r.asserts.map { $0.message ?? "" }) \(r.stderr.suffix(200))")
        #expect(st.programUid != v.uid, "two concurrent runs shared uid \(v.uid)")
        #expect(kill(v.pid, 0) == 0, "the sleeper should still be running")
        sleeper.cancel()
        _ = await sleeper.result
        try await Task.sleep(for: .milliseconds(300))
        #expect(!FileManager.default.fileExists(atPath: workdir), "the sleeper's work dir was left behind")
    }

    /// The clean-up runs as the program's uid on directory fds: a deep tree goes, and a
    /// symlink planted in the work dir is removed without touching what it points to.
    @Test func degradedCleanupRemovesOnlyTheWorkDir() async throws {
        let target = "/var/tmp/qcode-victim-\(token)"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try "keep".write(toFile: target + "/keep.txt", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: target) }
        let program = """
            import os
            os.symlink('\(target)', 'link')
            os.symlink('\(target)/keep.txt', 'file-link')
            d = os.getcwd()
            for i in range(300):
                os.mkdir('d')
                os.chdir('d')
                open('f', 'w').write('x')
            os.chdir(d)
            where = d
            print(d)
            """
        let (r, _) = try await Jail().runDetailed(JailJob(program: program, tests: "assert where.startswith('/tmp/qcode-jail-')"),
                                                  noUserNamespaces: true)
        #expect(r.outcome == .passed, "\(r.asserts.map { $0.message ?? "" }) \(r.stderr.suffix(300))")
        #expect(FileManager.default.fileExists(atPath: target + "/keep.txt"))
        let workdir = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(workdir.hasPrefix("/tmp/qcode-jail-"))
        #expect(!FileManager.default.fileExists(atPath: workdir), "work dir \(workdir) was not removed")
    }
}

/// Pids of jail processes started with CPU limit `cpuSeconds`: launchers (flag on the
/// command line) and jailed processes (their RLIMIT_CPU). Other suites run in parallel
/// with other limits, so each suite looks only for its own.
/// Whether `pid` descends from this test process (other test runs on the machine have jails too).
func isOurs(_ pid: Int32) -> Bool {
    var p = pid
    let me = getpid()
    for _ in 0..<64 {
        guard p > 1, let stat = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8),
              let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 2,
              let parent = Int32(fields[1]) else { return false }
        if parent == me { return true }
        p = parent
    }
    return false
}

/// This test process's jailed processes running with a CPU limit of `cpuSeconds` (zombies excluded).
func jailProcesses(cpuSeconds: Int) -> Set<Int32> {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var found = Set<Int32>()
    for e in entries {
        guard let pid = Int32(e), isOurs(pid), let cmd = FileManager.default.contents(atPath: "/proc/\(e)/cmdline"),
              !cmd.isEmpty else { continue }
        let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        // Cold runs carry the harness's marker; warm jobs are forks of a pool's server (`--serve`).
        guard args.contains(where: { $0.contains("qcode_harness") }) || args.contains("--serve") else { continue }
        if let i = args.firstIndex(of: "--cpu"), i + 1 < args.count, args[i + 1] == String(cpuSeconds) { found.insert(pid) }
        let limits = (try? String(contentsOfFile: "/proc/\(e)/limits", encoding: .utf8)) ?? ""
        if let line = limits.split(separator: "\n").first(where: { $0.hasPrefix("Max cpu time") }),
           line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first == Substring(String(cpuSeconds)) {
            found.insert(pid)
        }
    }
    return found
}

/// This test process's warm-pool processes: servers, zygotes, job inits and jobs.
func poolProcesses() -> Set<Int32> {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var found = Set<Int32>()
    for e in entries {
        guard let pid = Int32(e), isOurs(pid), let cmd = FileManager.default.contents(atPath: "/proc/\(e)/cmdline"),
              cmd.split(separator: 0).contains(where: { String(decoding: $0, as: UTF8.self) == "--serve" }) else { continue }
        let stat = (try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8)) ?? ""
        if stat.split(separator: ")").last?.split(separator: " ").first == "Z" { continue }
        found.insert(pid)
    }
    return found
}

// MARK: - Tests as programmers write them (pytest-style functions, doctests)

/// The same wrong tests, inside test functions: the rewritten asserts are judged in the
/// judge exactly like top-level ones, so no forgery may pass them either.
let wrongTestFunctions = "def test_wrong():\n    assert add(2, 2) == 999\n\ndef test_false():\n    x = add(1, 1)\n    assert False\n"

let testStyleCases: [HostileCase] = Set(forgeries.filter { $0.tests == wrongTests }.map(\.program)).sorted().flatMap { program in
    [true, false].map { guards in
        HostileCase(name: "forgery through test functions", program: program, tests: wrongTestFunctions, guards: guards,
                    kind: .pytest) { r, _ in r.passed == 0 && r.outcome != .passed }
    }
} + [
    // Test code runs in the judge, which is jailed too: a fixture's writes outside the work dir fail.
    HostileCase(name: "pytest: a fixture that writes outside the work dir", program: "def add(a, b):\n    return a + b\n", tests: """
        import os, pytest

        @pytest.fixture
        def planted():
            written = []
            for path in \(pyList(markers.map { $0 + "-fixture" })) + ['\(repoDir)/Sources/\(token)']:
                try:
                    with open(path, 'w') as f:
                        f.write('x')
                    written.append(path)
                except OSError:
                    pass
            yield written

        def test_add(planted):
            assert add(2, 2) == 4
            assert planted in ([], ['/tmp/\(token)-fixture'])
        """, kind: .pytest) { r, _ in r.outcome == .passed && r.passed == 1 },
    // A test that ends the judge's process: the tests after it never ran, so nothing passes as a whole.
    HostileCase(name: "pytest: a test that calls os._exit(0)", program: "def add(a, b):\n    return a + b\n", tests: """
        import os

        def test_first():
            assert add(1, 1) == 2

        def test_exit():
            os._exit(0)

        def test_after():
            assert add(2, 2) == 999
        """, kind: .pytest) { r, _ in
        r.outcome == .failed && r.passed == 1 && r.total == 3 && r.asserts[2].message?.hasPrefix("not run") == true
    },
    HostileCase(name: "pytest: a test that raises SystemExit", program: "def add(a, b):\n    return a + b\n",
                tests: "import sys\n\ndef test_exit():\n    sys.exit(0)\n\ndef test_wrong():\n    assert add(2, 2) == 999\n",
                kind: .pytest) { r, _ in r.outcome == .failed && r.passed == 0 && r.asserts[0].exceptionType == "SystemExit" },
    // The program ends inside a call the test wraps in `except BaseException`: the end is not swallowed.
    HostileCase(name: "pytest: the program exits inside a test that swallows everything", program: "import os\ndef add(a, b):\n    os._exit(0)\n",
                tests: "def test_swallow():\n    try:\n        add(1, 2)\n    except BaseException:\n        pass\n    assert True\n\n"
                    + "def test_later():\n    assert True\n", kind: .pytest) { r, _ in
        r.outcome != .passed && r.passed == 0
    },
    HostileCase(name: "asserts: a helper that swallows the program's end", program: "import os\ndef add(a, b):\n    os._exit(0)\n",
                tests: "def safe():\n    try:\n        return add(1, 2)\n    except BaseException:\n        return 3\n\nassert safe() == 3\n") { r, _ in
        r.outcome != .passed && r.passed == 0
    },
    // doctest compares repr: a program object's repr is never asked for, whatever it would say.
    HostileCase(name: "doctest: an object whose repr is the expected output", program: """
        class Four:
            def __repr__(self):
                return '4'
            def __eq__(self, o):
                return True
        def add(a, b):
            return Four()
        """, tests: "'''\n>>> add(2, 2)\n4\n>>> add(2, 2) == 5\nTrue\n'''", kind: .doctest) { r, _ in
        r.passed == 0 && r.outcome == .failed && r.asserts.allSatisfy { $0.exceptionType == "UnjudgeableValue" }
    },
    // What a call prints counts for doctest; printing around the calls (at import, from a thread later) does not.
    HostileCase(name: "doctest: output printed outside the call", program: """
        import threading, time
        print('5')
        def later():
            time.sleep(0.2)
            print('5')
        def add(a, b):
            threading.Thread(target=later).start()
            return None
        """, tests: "'''\n>>> add(2, 2)\n5\n'''", kind: .doctest) { r, _ in r.passed == 0 && r.outcome == .failed },
]
