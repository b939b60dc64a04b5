import ArgumentParser
import Foundation
import Policy
import PythonSyntax
import Sandbox

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every part qcode needs, one line each, with the fix for what is missing.")

    @Flag(help: "Skip starting the embedded llama-server.")
    var noServer = false

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

        // llama-server and the model.
        let settings = ServerSettings()
        let binaryOK = FileManager.default.isExecutableFile(atPath: settings.binary.path)
        line(binaryOK, "llama-server", binaryOK ? "\(settings.binary.path) (\(Self.serverVersion(settings.binary)))" : "missing: \(settings.binary.path)",
             fix: "run scripts/bootstrap")
        let modelSize = (try? FileManager.default.attributesOfItem(atPath: settings.model.path)[.size] as? Int) ?? nil
        line(modelSize != nil, "model", modelSize.map { "\(settings.model.lastPathComponent) (\($0 / 1_000_000) MB)" } ?? "missing: \(settings.model.path)",
             fix: "run scripts/bootstrap (QCODE_MODEL=1.5b for the larger model)")
        if let endpoint = ProcessInfo.processInfo.environment["QCODE_ENDPOINT"], let url = URL(string: endpoint) {
            let healthy = await HTTPLanguageModel(baseURL: url).health(timeout: 3)
            line(healthy, "endpoint", "\(endpoint) /health \(healthy ? "200" : "not answering")",
                 fix: "start the server at QCODE_ENDPOINT or unset it to use the embedded one")
        } else if binaryOK && modelSize != nil && !noServer {
            let server = EmbeddedServer(settings: ServerSettings(slots: 1, contextTokens: 2048, parentTie: Jail.locateLauncher()))
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

        // Locations the daemon writes to.
        for (part, dir) in [("socket dir", Paths.socketDirectory), ("config dir", Paths.configDirectory), ("cache dir", QCodeCache.root)] {
            let ok = Paths.ensureWritable(dir)
            line(ok, part, "\(dir.path)\(ok ? " writable" : " not writable")", fix: "make \(dir.path) writable by \(NSUserName())")
        }
        if failures > 0 {
            print("\(failures) part(s) need attention")
            throw ExitCode(1)
        }
    }

    static func serverVersion(_ binary: URL) -> String {
        let p = Process()
        p.executableURL = binary
        p.arguments = ["--version"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        guard (try? p.run()) != nil else { return "version unknown" }
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return out.split(separator: "\n").first { $0.hasPrefix("version") }.map(String.init) ?? "version unknown"
    }
}

/// Where qcode keeps its runtime files (XDG conventions).
enum Paths {
    static var socketDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        if let runtime = env["XDG_RUNTIME_DIR"], !runtime.isEmpty { return URL(fileURLWithPath: runtime).appendingPathComponent("qcode") }
        return URL(fileURLWithPath: "/tmp/qcode-\(getuid())")
    }
    static var configDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        if let config = env["XDG_CONFIG_HOME"], !config.isEmpty { return URL(fileURLWithPath: config).appendingPathComponent("qcode") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".config/qcode")
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
