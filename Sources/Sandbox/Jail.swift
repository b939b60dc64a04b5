import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs programs against their tests in the `qcode-jail` launcher.
public struct Jail: Sendable {
    public let launcher: URL
    public let python: String
    public let limits: JailLimits
    /// Directories the jailed program must not see, beyond the launcher's fixed list
    /// (homes, `/work`, `/run`, …): the caller's checkout lives wherever it was cloned.
    public let hidden: [String]

    /// - Parameter launcher: the `qcode-jail` binary; `nil` finds it with `locateLauncher()`.
    /// - Parameter hide: extra private directories; system directories and ancestors of
    ///   the interpreter are dropped, since hiding them would leave nothing to run.
    public init(launcher: URL? = nil, python: String = "/usr/bin/python3", limits: JailLimits = .default,
                hide: [String] = Jail.privateDirectories()) throws {
        guard let found = launcher ?? Jail.locateLauncher() else {
            throw JailError.launcherNotFound(searched: Jail.candidateLaunchers().map(\.path))
        }
        guard access(found.path, X_OK) == 0 else { throw JailError.launcherNotFound(searched: [found.path]) }
        guard access(python, X_OK) == 0 else { throw JailError.pythonMissing(python) }
        self.launcher = found
        self.python = python
        self.limits = limits
        self.hidden = Jail.safeToHide(hide, python: python)
    }

    /// The current directory (the daemon's or the test run's checkout) and `$QCODE_CACHE`.
    public static func privateDirectories() -> [String] {
        var dirs = [FileManager.default.currentDirectoryPath]
        if let cache = ProcessInfo.processInfo.environment["QCODE_CACHE"], !cache.isEmpty { dirs.append(cache) }
        return dirs
    }

    static let systemDirectories = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                                    "/etc", "/dev", "/proc", "/tmp"]

    static func safeToHide(_ dirs: [String], python: String) -> [String] {
        func isWithin(_ path: String, _ dir: String) -> Bool { path == dir || path.hasPrefix(dir + "/") }
        var kept: [String] = []
        for raw in dirs {
            let dir = URL(fileURLWithPath: raw).standardizedFileURL.path
            guard dir.hasPrefix("/"), dir != "/", !kept.contains(dir),
                  !isWithin(python, dir),
                  !systemDirectories.contains(where: { isWithin($0, dir) || isWithin(dir, $0) })
            else { continue }
            kept.append(dir)
        }
        return Array(kept.prefix(16))  // the launcher's limit
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
    func arguments(noUserNamespaces: Bool = false) -> [String] {
        var args = [
            "--wall", String(limits.wallSeconds), "--cpu", String(limits.cpuSeconds),
            "--mem", String(limits.memoryBytes), "--fsize", String(limits.fileSizeBytes),
            "--nproc", String(limits.maxProcesses), "--nofile", String(limits.maxOpenFiles),
            "--out", String(limits.outputBytes), "--tmpfs", String(max(limits.fileSizeBytes * 2, 8 << 20)),
        ]
        if noUserNamespaces { args.append("--no-userns") }
        for dir in hidden { args += ["--hide", dir] }
        return args + ["--", python, "-I", "-S", "-B", "-c", Harness.source]
    }

    func runDetailed(_ job: JailJob, noUserNamespaces: Bool = false) async throws -> (report: TestReport, status: LauncherStatus) {
        try Task.checkCancellation()
        let nonce = Jail.makeNonce()
        let stdin = Harness.frame(nonce: nonce, job: job)
        let handle = LauncherHandle()
        let output = try await withTaskCancellationHandler {
            try await Spawner.run(executable: launcher.path, arguments: arguments(noUserNamespaces: noUserNamespaces),
                                  stdin: stdin, safetyTimeout: limits.wallSeconds + 10, handle: handle)
        } onCancel: {
            handle.cancel()
        }
        let status = try LauncherStatus.parse(output.status, launcherStderr: output.stderr)
        if !status.setupError.isEmpty && !status.ran {
            throw JailError.launcherFailed(status.setupError)
        }
        let report = ReportBuilder.build(nonce: nonce, output: output, status: status, limits: limits)
        return (report, status)
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
        var detail = status.isolation == .namespaces
            ? "user, mount, PID, network, IPC and UTS namespaces; seccomp; rlimits; read-only root; tmpfs work dir"
            : "degraded (seccomp + rlimits + nobody): \(status.degradedReason)"
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

    enum CodingKeys: String, CodingKey {
        case isolation, ran, signal
        case exitCode = "exit_code", timedOut = "timed_out", outputFlood = "output_flood"
        case stdoutTruncated = "stdout_truncated", stderrTruncated = "stderr_truncated"
        case wallMs = "wall_ms", cpuMs = "cpu_ms", degradedReason = "degraded_reason", setupError = "setup_error"
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
