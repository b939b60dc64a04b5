import Foundation

/// Resource limits for one jailed run. Part of the cache key, so a verdict
/// obtained under generous limits is never reused for strict ones.
public struct JailLimits: Sendable, Hashable, Codable {
    /// Wall-clock budget, enforced by the launcher (not by the program's own clock).
    public var wallSeconds: Double
    /// RLIMIT_CPU: SIGXCPU at this many seconds, SIGKILL one second later.
    public var cpuSeconds: Int
    /// RLIMIT_AS. Keep near 1 GiB: a higher limit lets an 8 GiB allocation really fill RAM.
    public var memoryBytes: Int
    /// RLIMIT_FSIZE; the /tmp work dir is also sized from it.
    public var fileSizeBytes: Int
    /// RLIMIT_NPROC (threads count; fork itself is denied by seccomp).
    public var maxProcesses: Int
    /// RLIMIT_NOFILE.
    public var maxOpenFiles: Int
    /// Bytes of stdout and of stderr kept; far beyond it (256×, at least 16 MiB) the run is killed as a flood.
    public var outputBytes: Int

    public init(wallSeconds: Double = 10, cpuSeconds: Int = 5, memoryBytes: Int = 1 << 30,
                fileSizeBytes: Int = 16 << 20, maxProcesses: Int = 64, maxOpenFiles: Int = 64,
                outputBytes: Int = 64 << 10) {
        self.wallSeconds = wallSeconds
        self.cpuSeconds = cpuSeconds
        self.memoryBytes = memoryBytes
        self.fileSizeBytes = fileSizeBytes
        self.maxProcesses = maxProcesses
        self.maxOpenFiles = maxOpenFiles
        self.outputBytes = outputBytes
    }

    public static let `default` = JailLimits()

    /// The size of the /tmp work dir: twice the file-size limit, at least 8 MiB.
    var tmpfsBytes: Int { max(fileSizeBytes * 2, 8 << 20) }

    /// The launcher refuses anything else (a NaN wall clock would disable the limit);
    /// checking here turns that into an error that names the field.
    func validate() throws {
        func check(_ ok: Bool, _ field: String, _ range: String) throws {
            if !ok { throw JailError.invalidLimits("\(field) must be \(range)") }
        }
        try check(wallSeconds.isFinite && wallSeconds > 0 && wallSeconds <= 86_400, "wallSeconds", "a finite number in (0, 86400]")
        try check((1...86_400).contains(cpuSeconds), "cpuSeconds", "in 1...86400")
        try check((32 << 20...1 << 40).contains(memoryBytes), "memoryBytes", "between 32 MiB and 1 TiB")
        try check((0...1 << 40).contains(fileSizeBytes), "fileSizeBytes", "between 0 and 1 TiB")
        try check((1...65_536).contains(maxProcesses), "maxProcesses", "in 1...65536")
        try check((8...65_536).contains(maxOpenFiles), "maxOpenFiles", "in 8...65536")
        try check((0...1 << 30).contains(outputBytes), "outputBytes", "between 0 and 1 GiB")
    }
}

/// What the judge makes of a job's `tests`.
public enum TestKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// A Python file whose top-level asserts are the checks (MBPP).
    case asserts
    /// A Python file of top-level asserts and pytest-style `test_*` functions (and
    /// `Test*` classes): each function, each `parametrize` case, is one check.
    case pytest
    /// A docstring's source (the string literal): each `>>>` example with expected
    /// output is one check, compared as doctest compares.
    case doctest
}

/// A program and the tests that judge it (MBPP: `test_list` joined, `test_setup_code`).
public struct JailJob: Sendable, Hashable, Codable {
    public var program: String
    public var tests: String
    /// Runs before the program, in the same namespace (MBPP `test_setup_code`).
    public var setup: String
    public var kind: TestKind
    /// The program's module name: its `__name__` (so an `if __name__ == "__main__"`
    /// block stays asleep) and what `import NAME` / `from NAME import f` in the tests
    /// mean (the program). nil: `__main__`.
    public var module: String?
    /// pytest: only test functions that reach this name (directly, or through the
    /// test file's own helpers and fixtures); nil runs them all.
    public var select: String?
    /// doctest: the module line the docstring starts on, so examples report module lines.
    public var firstLine: Int

    public init(program: String, tests: String, setup: String = "", kind: TestKind = .asserts, module: String? = nil,
                select: String? = nil, firstLine: Int = 1) {
        self.program = program
        self.tests = tests
        self.setup = setup
        self.kind = kind
        self.module = module
        self.select = select
        self.firstLine = firstLine
    }

    /// `key=value` lines for the judge. A value never holds a line break (a name given over
    /// the wire could otherwise add options of its own).
    var options: String {
        func value(_ s: String) -> String { s.filter { $0 != "\n" && $0 != "\r" } }
        var lines = ["kind=\(kind.rawValue)", "line=\(firstLine)"]
        if let module { lines.append("module=\(value(module))") }
        if let select { lines.append("select=\(value(select))") }
        return lines.joined(separator: "\n")
    }
}

public enum TestOutcome: String, Sendable, Codable {
    /// Every planned assert ran and held.
    case passed
    /// An assert failed or never ran (e.g. the program exited early).
    case failed
    /// Wall-clock or CPU limit reached.
    case timeout
    /// Killed by a signal (memory exhaustion, output flood, segfault).
    case crashed
    /// The program did not compile or raised before the asserts, or the tests are unusable.
    case error
}

public struct AssertResult: Sendable, Codable, Hashable {
    /// Position among the checks of the test file; -1 for a failing non-assert statement.
    public var index: Int
    /// nil or "assert": a top-level assert; "test": one pytest-style test function (one
    /// `parametrize` case), its id in `source`; "example": a doctest example.
    public var kind: String?
    /// Line in the test file.
    public var line: Int
    public var source: String
    public var passed: Bool
    public var exceptionType: String?
    public var message: String?
    /// For a failed comparison, the expected side as the judge printed it (`repr`).
    public var expected: String?
    /// For a failed assert, what the program's side evaluated to (`repr`).
    public var actual: String?

    public init(index: Int, line: Int, source: String, passed: Bool, exceptionType: String? = nil, message: String? = nil,
                expected: String? = nil, actual: String? = nil, kind: String? = nil) {
        self.index = index
        self.kind = kind
        self.line = line
        self.source = source
        self.passed = passed
        self.exceptionType = exceptionType
        self.message = message
        self.expected = expected
        self.actual = actual
    }
}

public enum IsolationMode: String, Sendable, Codable {
    /// User, mount, PID, network, IPC and UTS namespaces, an allow-listed root, seccomp, rlimits.
    case namespaces
    /// No user namespaces here: seccomp + rlimits, a uid of its own per run (as root), and,
    /// where the kernel has landlock, the same filesystem allow-list (see sandbox/README.md).
    case degraded
}

public struct TestReport: Sendable, Codable {
    public var outcome: TestOutcome
    public var passed: Int
    public var failed: Int
    public var total: Int
    public var asserts: [AssertResult]
    public var stdout: String
    public var stderr: String
    public var wallMs: Double
    public var cpuMs: Double
    /// The signal that ended the program, if any.
    public var signal: Int32?
    /// "line N: message" when the program does not compile.
    public var syntaxError: String?
    public var isolation: IsolationMode
    /// Which jail ran it: a warm pool's or one set up for the run (absent in reports of older versions).
    public var path: JailPath?
}

/// What `qcode doctor` shows about the jail on this machine.
public struct JailProbe: Sendable {
    public var isolation: IsolationMode
    /// The probe's `socket()` call failed inside the jail.
    public var networkDenied: Bool
    public var pythonVersion: String
    public var detail: String
}

public struct JailStats: Sendable, Hashable {
    /// Runs that started a jail.
    public var runs: Int
    /// Runs answered from the cache.
    public var cacheHits: Int
    /// Of `runs`, those a warm pool ran.
    public var warmRuns = 0
}

public enum JailError: Error, CustomStringConvertible, Sendable {
    case launcherNotFound(searched: [String])
    case pythonMissing(String)
    case spawnFailed(String, errno: Int32)
    case launcherFailed(String)
    /// The launcher ended without its status line: killed (by hand, by the
    /// OOM killer) or crashed. What happened, and the tail of its stderr.
    case launcherDied(String)
    case protocolError(String)
    case invalidLimits(String)
    case harnessUnavailable(String)

    public var description: String {
        switch self {
        case .launcherNotFound(let searched):
            return "qcode-jail launcher not found (looked in: \(searched.joined(separator: ", "))). "
                + "Run `swift build --product qcode-jail` (or scripts/bootstrap, then `swift build`), "
                + "or set QCODE_JAIL to the launcher's path."
        case .pythonMissing(let path):
            return "Python interpreter \(path) not found or not executable. Install it (`apt-get install python3`) "
                + "or pass another path to Jail(python:)."
        case .spawnFailed(let what, let code):
            return "could not start the jail: \(what): \(String(cString: strerror(code))). "
                + "Check that the launcher is executable and that the machine has free processes and file descriptors."
        case .launcherFailed(let message):
            return "the jail launcher failed before the program ran: \(message). "
                + "Run `qcode doctor` to check namespace support on this machine."
        case .launcherDied(let how):
            return "the jail launcher ended before it reported a result (\(how)); the program was not judged. "
                + "Retry; if it happens again, run `qcode doctor` (was the launcher killed, or the machine out of memory?)."
        case .protocolError(let message):
            return "the jail launcher's status could not be read (\(message)); the launcher and this build may be out of sync: rebuild with `swift build`."
        case .invalidLimits(let message):
            return "invalid jail limits: \(message). Fix the JailLimits passed to Jail (or the matching command-line flags)."
        case .harnessUnavailable(let message):
            return "the jail could not prepare its Python harness: \(message). "
                + "Run `qcode doctor` to check the jail, and check that the interpreter runs (`python3 -I -S -c pass`)."
        }
    }
}
