import ArgumentParser
import Basics
import Daemon
import Foundation
import Policy
import PythonSyntax
import Sandbox

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every part qcode needs, one line each, with the fix for what is missing.")

    @Flag(help: "Skip starting the embedded llama-server.")
    var noServer = false

    @OptionGroup var llm: LLMOptions

    func run() async throws {
        var failures = 0
        func line(_ ok: Bool, _ part: String, _ detail: String, fix: String? = nil) {
            let mark = ok ? "ok  " : "FAIL"
            print("\(mark) \(part.padding(toLength: 14, withPad: " ", startingAt: 0)) \(detail)")
            if !ok {
                failures += 1
                if let fix { print("     fix: \(fix)") }
            }
        }

        // Grammar: load it and parse a sample.
        do {
            let parser = try PythonParser()
            let report = parser.parse("def add(a, b):\n    return a + b\n").report
            line(report.verdict == .valid, "grammar", "\(PythonParser.grammarDescription); sample parses \(report.verdict.rawValue)",
                 fix: "run scripts/bootstrap, then rebuild")
        } catch {
            line(false, "grammar", "\(error)", fix: "run scripts/bootstrap, then rebuild")
        }

        // Jail: run a probe program that tries the network.
        do {
            let probe = try await Jail().probe()
            let mode = probe.isolation == .namespaces
                ? "namespaces + seccomp + rlimits"
                : "DEGRADED: seccomp + rlimits + dropped privileges (no user namespaces here)"
            line(probe.networkDenied, "jail", "\(mode); python \(probe.pythonVersion); network \(probe.networkDenied ? "denied" : "REACHABLE")",
                 fix: "the jail must deny the network: check seccomp support (\(probe.detail))")
        } catch {
            line(false, "jail", "\(error)", fix: "run scripts/bootstrap, then `swift build` (qcode-jail sits next to qcode)")
        }

        // The warm pool: one slot, one job. Without it every job runs cold: slower, as safe.
        if let jail = try? Jail() {
            let pool = JailPool(jail: jail, slots: 1)
            var pooled = jail
            pooled.pool = pool
            switch await pool.waitUntilSettled() {
            case .ready:
                let r = try? await pooled.run(JailJob(program: "x = 1\n", tests: "assert x == 1"))
                line(r?.path == .warm && r?.outcome == .passed, "jail pool",
                     r.map { "warm: a job ran in \(String(format: "%.1f", $0.wallMs)) ms (\($0.outcome.rawValue))" } ?? "warm: the test job failed",
                     fix: "the pool started but its job did not pass; run `swift test --filter WarmPool` for details")
            case .unavailable(let why):
                line(true, "jail pool", "unavailable, every job runs cold (slower, as safe): \(why)")
            case .off, .starting:
                line(true, "jail pool", "did not settle; jobs run cold")
            }
            pool.shutdown()
        }

        // Configuration, then llama-server and the model it names.
        let config: Configuration
        do {
            let resolved = try Configuration.resolve(flags: llm.configFlags)
            config = resolved.values
            line(true, "config", "\(resolved.file) (`qcode config` shows every value and its source)")
        } catch {
            line(false, "config", "\(error)", fix: "fix the file or the variable named above (`qcode config --help` lists the keys)")
            print("1 part(s) need attention")
            throw ExitCode(1)
        }
        if let url = config.endpointURL {
            let healthy = await HTTPLanguageModel(baseURL: url).health(timeout: 3)
            line(healthy, "endpoint", "\(config.llmDescription): /health \(healthy ? "200" : "not answering")",
                 fix: "start the server at \(url.absoluteString), or unset endpoint to use the embedded one")
        } else {
            let binary = URL(fileURLWithPath: config.llamaServer)
            let binaryOK = FileManager.default.isExecutableFile(atPath: binary.path)
            let version = binaryOK ? await Self.serverVersion(binary) : ""
            line(binaryOK, "llama-server", binaryOK ? "\(binary.path) (\(version))" : "missing: \(binary.path)",
                 fix: "run scripts/bootstrap")
            let model = config.modelFile
            let modelSize = (try? FileManager.default.attributesOfItem(atPath: model.path)[.size] as? Int) ?? nil
            line(modelSize != nil, "model", modelSize.map { "\(config.llmDescription): \(model.lastPathComponent) (\($0 / 1_000_000) MB)" }
                    ?? "missing: \(model.path) (\(config.llmDescription))",
                 fix: config.modelPath.isEmpty ? "run `\(config.model.bootstrapCommand)`" : "point model_path at an existing GGUF file")
            if binaryOK && modelSize != nil && !noServer {
                let server = EmbeddedServer(settings: ServerSettings(binary: binary, model: model, threads: config.threads,
                                                                     slots: 1, contextTokens: 2048, parentTie: Jail.locateLauncher()))
                let started = ContinuousClock.now
                do {
                    let url = try await server.ensureRunning()
                    let seconds = (ContinuousClock.now - started).components.seconds
                    line(true, "server", "started on \(url.absoluteString), /health 200 after ~\(seconds) s")
                } catch {
                    line(false, "server", "\(error)", fix: "see the log; rerun scripts/bootstrap if the binary is broken")
                }
                await server.stop()
            }
        }

        // Locations the daemon writes to.
        let socketDirectory = URL(fileURLWithPath: config.socket).deletingLastPathComponent()
        for (part, dir) in [("socket dir", socketDirectory), ("config dir", DaemonPaths.configDirectory), ("cache dir", QCodeCache.root)] {
            let ok = Self.ensureWritable(dir)
            line(ok, part, "\(dir.path)\(ok ? " writable" : " not writable")", fix: "make \(dir.path) writable by \(NSUserName())")
        }
        if failures > 0 {
            print("\(failures) part(s) need attention")
            throw ExitCode(1)
        }
    }

    static func serverVersion(_ binary: URL) async -> String {
        guard let out = try? await runToCompletion(binary, ["--version"]).output else { return "version unknown" }
        return out.split(separator: "\n").first { $0.hasPrefix("version") }.map(String.init) ?? "version unknown"
    }

    /// Creates the directory (0700) if needed and checks it accepts a file.
    static func ensureWritable(_ dir: URL) -> Bool {
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let probe = dir.appendingPathComponent(".qcode-write-probe-\(getpid())")
            try Data().write(to: probe)
            try FileManager.default.removeItem(at: probe)
            return true
        } catch {
            return false
        }
    }
}
