import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs programs against their tests in the `qcode-jail` launcher.
public struct Jail: Sendable {
    public let launcher: URL
    public let python: String
    public let limits: JailLimits
    /// The interpreter actually executed: `python` with symlinks resolved, so the jail's
    /// allow-listed root only needs to show the directory it really lives in.
    let interpreter: String
    /// Directories the jail must show read-only besides `/usr` and friends: the
    /// interpreter's prefix when it lives elsewhere (e.g. `/opt/python3.12`).
    let extraReadOnly: [String]
    /// The in-process defences of the program's interpreter (audit hooks). Only tests
    /// of the lower layers turn them off, to reach seccomp and the kernel with ctypes.
    var guards = true
    /// Warm jails to run in when the pool is ready (else, and for degraded runs, cold).
    public var pool: JailPool?

    /// - Parameter launcher: the `qcode-jail` binary; `nil` finds it with `locateLauncher()`.
    public init(launcher: URL? = nil, python: String = "/usr/bin/python3", limits: JailLimits = .default) throws {
        guard let found = launcher ?? Jail.locateLauncher() else {
            throw JailError.launcherNotFound(searched: Jail.candidateLaunchers().map(\.path))
        }
        guard access(found.path, X_OK) == 0 else { throw JailError.launcherNotFound(searched: [found.path]) }
        guard access(python, X_OK) == 0 else { throw JailError.pythonMissing(python) }
        try limits.validate()
        self.launcher = found
        self.python = python
        self.limits = limits
        self.interpreter = URL(fileURLWithPath: python).resolvingSymlinksInPath().path
        self.extraReadOnly = Jail.prefixOutsideSystem(interpreter)
    }

    static let systemDirectories = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]

    /// `/opt/py/bin/python3` needs `/opt/py` (its standard library lives under the prefix).
    static func prefixOutsideSystem(_ interpreter: String) -> [String] {
        if systemDirectories.contains(where: { interpreter.hasPrefix($0 + "/") }) { return [] }
        let prefix = URL(fileURLWithPath: interpreter).deletingLastPathComponent().deletingLastPathComponent().path
        return prefix == "/" || prefix.isEmpty ? [] : [prefix]
    }

    /// `$QCODE_JAIL`, then next to the running executable (the `qcode` binary, or the
    /// test bundle in `.build/debug`), then `.build/{debug,release}` under the current directory.
    public static func locateLauncher() -> URL? {
        candidateLaunchers().first { access($0.path, X_OK) == 0 }
    }

    static func candidateLaunchers() -> [URL] {
        var out: [URL] = []
        if let env = ProcessInfo.processInfo.environment["QCODE_JAIL"], !env.isEmpty {
            out.append(URL(fileURLWithPath: env))
        }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            out.append(URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("qcode-jail"))
        }
        out.append(Bundle.main.bundleURL.appendingPathComponent("qcode-jail"))
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        for config in ["debug", "release"] {
            out.append(cwd.appendingPathComponent(".build/\(config)/qcode-jail"))
        }
        return out
    }

    /// Runs `job` and judges it from the harness's records alone. Honours task
    /// cancellation by killing the launcher, which takes the jailed tree with it.
    public func run(_ job: JailJob) async throws -> TestReport {
        try await runDetailed(job).report
    }

    /// Launcher flags; `noUserNamespaces` forces degraded mode (for tests and doctor).
    func arguments(_ code: CompiledHarness, noUserNamespaces: Bool = false) -> [String] {
        var args = [
            "--wall", String(limits.wallSeconds), "--cpu", String(limits.cpuSeconds),
            "--mem", String(limits.memoryBytes), "--fsize", String(limits.fileSizeBytes),
            "--nproc", String(limits.maxProcesses), "--nofile", String(limits.maxOpenFiles),
            "--out", String(limits.outputBytes), "--tmpfs", String(limits.tmpfsBytes),
        ]
        if noUserNamespaces { args.append("--no-userns") }
        for dir in extraReadOnly { args += ["--ro", dir] }
        if let cgroup = ProcessInfo.processInfo.environment["QCODE_JAIL_CGROUP"], cgroup.hasPrefix("/") {
            args += ["--cgroup", cgroup]
        }
        let python = [interpreter, "-I", "-S", "-B", "-c", Harness.loader]
        let judge = Harness.chunks(code.judge)
        args += ["--judge", String(python.count + judge.count)] + python + judge
        return args + ["--"] + python + Harness.chunks(code.program)
    }

    /// Whether `pool` was made for this launcher and interpreter (each job brings its own limits).
    func canUse(_ pool: JailPool) -> Bool {
        pool.template.launcher == launcher && pool.template.interpreter == interpreter
            && pool.template.extraReadOnly == extraReadOnly
    }

    func runDetailed(_ job: JailJob, noUserNamespaces: Bool = false) async throws -> (report: TestReport, status: LauncherStatus) {
        try Task.checkCancellation()
        let nonce = Jail.makeNonce()
        let stdin = Harness.frame(nonce: nonce, job: job, guards: guards)
        if !noUserNamespaces, let pool, canUse(pool), let output = try await pool.run(stdin: stdin, limits: limits) {
            let status = try LauncherStatus.read(output)
            return (ReportBuilder.build(nonce: nonce, output: output, status: status, limits: limits), status)
        }
        let code = try await HarnessCache.shared.compiled(for: self)
        let handle = LauncherHandle()
        let output = try await withTaskCancellationHandler {
            try await Spawner.run(executable: launcher.path, arguments: arguments(code, noUserNamespaces: noUserNamespaces),
                                  stdin: stdin, safetyTimeout: limits.wallSeconds + 10, handle: handle)
        } onCancel: {
            handle.cancel()
        }
        let status = try LauncherStatus.read(output)
        if !status.setupError.isEmpty && !status.ran {
            throw JailError.launcherFailed(status.setupError)
        }
        let report = ReportBuilder.build(nonce: nonce, output: output, status: status, limits: limits)
        return (report, status)
    }

    /// "killed by signal 9", "exited with status 1: <stderr tail>", from a raw waitpid status.
    static func ending(_ output: LauncherOutput) -> String {
        let signal = output.exitStatus & 0x7f
        let how = signal != 0 ? "killed by signal \(signal)" : "exited with status \((output.exitStatus >> 8) & 0xff)"
        let tail = String(decoding: output.stderr.suffix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return tail.isEmpty ? how : "\(how): \(tail)"
    }

    static func makeNonce() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%016llx", g.next() as UInt64) }.joined()
    }

    /// Runs a probe program that tries to open a socket and prints the Python version.
    public func probe() async throws -> JailProbe {
        let job = JailJob(program: """
            import socket, sys
            try:
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                net = "allowed"
            except OSError:
                net = "denied"
            print(sys.version.split()[0])
            """, tests: "assert net == 'denied'")
        let (report, status) = try await runDetailed(job)
        let version = report.stdout.split(separator: "\n").first.map(String.init) ?? "unknown"
        let memory = status.memoryFence == "cgroup" ? "memory cgroup" : "rlimits (memfd denied)"
        var detail = status.isolation == .namespaces
            ? "user, mount, PID, network, IPC and UTS namespaces; allow-listed read-only root; seccomp; \(memory); judge in its own process"
            : "degraded (seccomp + \(memory) + a uid per run\(status.landlock > 0 ? " + landlock" : "")): \(status.degradedReason)"
        if report.outcome != .passed && report.outcome != .failed {
            detail += "; probe outcome \(report.outcome.rawValue): \(report.stderr.prefix(200))"
        }
        return JailProbe(isolation: status.isolation, networkDenied: report.outcome == .passed,
                         pythonVersion: version, detail: detail)
    }
}

/// The launcher's final status line (fd 4).
struct LauncherStatus: Sendable, Decodable {
    var isolation: IsolationMode
    var ran: Bool
    var exitCode: Int32
    var signal: Int32
    var timedOut: Bool
    var outputFlood: Bool
    var stdoutTruncated: Bool
    var stderrTruncated: Bool
    var wallMs: Double
    var cpuMs: Double
    var degradedReason: String
    var setupError: String
    /// The judge's own end (absent when the launcher ran a single command).
    var judgeRan: Bool = false
    var judgeExitCode: Int32 = 0
    var judgeSignal: Int32 = 0
    /// "cgroup" when a memory cgroup holds the run, "rlimit" when RLIMIT_AS does (memfd denied).
    var memoryFence: String = "rlimit"
    /// Degraded mode: the landlock ABI in force, 0 without landlock.
    var landlock: Int = 0
    /// The host uid the program ran as.
    var programUid: UInt32 = 0
    /// A warm pool's jail or one set up for the run.
    var path: JailPath = .cold

    enum CodingKeys: String, CodingKey {
        case isolation, ran, signal, landlock
        case exitCode = "exit_code", timedOut = "timed_out", outputFlood = "output_flood"
        case stdoutTruncated = "stdout_truncated", stderrTruncated = "stderr_truncated"
        case wallMs = "wall_ms", cpuMs = "cpu_ms", degradedReason = "degraded_reason", setupError = "setup_error"
        case judgeRan = "judge_ran", judgeExitCode = "judge_exit_code", judgeSignal = "judge_signal"
        case memoryFence = "memory_fence", programUid = "program_uid", path
    }

    init(isolation: IsolationMode, ran: Bool, exitCode: Int32, signal: Int32, timedOut: Bool, outputFlood: Bool,
         stdoutTruncated: Bool, stderrTruncated: Bool, wallMs: Double, cpuMs: Double, degradedReason: String,
         setupError: String, judgeRan: Bool = true) {
        self.isolation = isolation
        self.ran = ran
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.outputFlood = outputFlood
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
        self.wallMs = wallMs
        self.cpuMs = cpuMs
        self.degradedReason = degradedReason
        self.setupError = setupError
        self.judgeRan = judgeRan
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        isolation = try c.decode(IsolationMode.self, forKey: .isolation)
        ran = try c.decode(Bool.self, forKey: .ran)
        exitCode = try c.decode(Int32.self, forKey: .exitCode)
        signal = try c.decode(Int32.self, forKey: .signal)
        timedOut = try c.decode(Bool.self, forKey: .timedOut)
        outputFlood = try c.decode(Bool.self, forKey: .outputFlood)
        stdoutTruncated = try c.decode(Bool.self, forKey: .stdoutTruncated)
        stderrTruncated = try c.decode(Bool.self, forKey: .stderrTruncated)
        wallMs = try c.decode(Double.self, forKey: .wallMs)
        cpuMs = try c.decode(Double.self, forKey: .cpuMs)
        degradedReason = try c.decode(String.self, forKey: .degradedReason)
        setupError = try c.decode(String.self, forKey: .setupError)
        judgeRan = try c.decodeIfPresent(Bool.self, forKey: .judgeRan) ?? false
        judgeExitCode = try c.decodeIfPresent(Int32.self, forKey: .judgeExitCode) ?? 0
        judgeSignal = try c.decodeIfPresent(Int32.self, forKey: .judgeSignal) ?? 0
        memoryFence = try c.decodeIfPresent(String.self, forKey: .memoryFence) ?? "rlimit"
        landlock = try c.decodeIfPresent(Int.self, forKey: .landlock) ?? 0
        programUid = try c.decodeIfPresent(UInt32.self, forKey: .programUid) ?? 0
        path = try c.decodeIfPresent(JailPath.self, forKey: .path) ?? .cold
    }

    /// The launcher's final status. Without one, a launcher that was killed or
    /// failed mid-run says so; only one that exited 0 without it is out of sync.
    static func read(_ output: LauncherOutput) throws -> LauncherStatus {
        do {
            return try parse(output.status, launcherStderr: output.stderr)
        } catch {
            if output.exitStatus != 0 { throw JailError.launcherDied(Jail.ending(output)) }
            throw error
        }
    }

    static func parse(_ data: Data, launcherStderr: Data) throws -> LauncherStatus {
        let line = data.split(separator: UInt8(ascii: "\n")).last ?? Data()
        do {
            return try JSONDecoder().decode(LauncherStatus.self, from: Data(line))
        } catch {
            let tail = String(decoding: launcherStderr.suffix(300), as: UTF8.self)
            throw JailError.protocolError("no status line; launcher stderr: \(tail)")
        }
    }
}
