import ArgumentParser
import CodeDomain
import Daemon
import Foundation
import Policy
import Sandbox

/// Where completions come from: a configured endpoint, or the embedded server.
/// Unset options fall back to `QCODE_*` variables, then config.toml, then
/// defaults (see `qcode config`).
struct LLMOptions: ParsableArguments {
    @Option(help: "Base URL of an OpenAI-compatible or llama.cpp server (default: $QCODE_ENDPOINT, else the embedded llama-server).")
    var endpoint: String?

    @Option(help: "Wire protocol of --endpoint: llama (native /completion) or openai (/v1/completions).")
    var api: APIFlavor?

    @Option(help: "Model name sent to an OpenAI-compatible endpoint.")
    var modelName: String?

    @Flag(help: "The endpoint ignores `n`: send one request per candidate.")
    var noN = false

    @Option(help: "Seconds to wait for one LLM call (default 600: a whole program on a busy 2-core machine can take minutes).")
    var llmTimeout: Double?

    @Option(help: "Embedded server: parallel slots, the ceiling on -k (default 8).")
    var slots: Int?

    @Option(help: "Embedded server: CPU threads (default: cores, at most 4).")
    var threads: Int?

    /// The options given, as configuration keys.
    var configFlags: [String: String] {
        var f: [String: String] = [:]
        if let endpoint { f["endpoint"] = endpoint }
        if let api { f["api"] = api.rawValue }
        if let modelName { f["model_name"] = modelName }
        if let llmTimeout { f["llm_timeout"] = String(llmTimeout) }
        if let slots { f["slots"] = String(slots) }
        if let threads { f["threads"] = String(threads) }
        return f
    }

    /// The same options for a `qcode serve` started in the background.
    var serveArguments: [String] {
        configFlags.sorted { $0.key < $1.key }.flatMap { ["--" + $0.key.replacingOccurrences(of: "_", with: "-"), $0.value] }
            + (noN ? ["--no-n"] : [])
    }
}

extension APIFlavor: ExpressibleByArgument {}

/// The warm parts of an in-process qcode command (`--no-daemon`, `bench`,
/// `sample`), built by the same `Components` the daemon keeps.
struct Engine {
    let model: any LanguageModel
    let server: EmbeddedServer?
    let jail: JailRunner

    static func make(_ llm: LLMOptions, timeout: Double = 10) throws -> Engine {
        let config: DaemonConfig
        do { config = try DaemonConfig.resolve(flags: llm.configFlags) } catch { throw ValidationError("\(error)") }
        let components = Components.make(config, supportsN: !llm.noN)
        if let server = components.server { Engine.installSignalHandlers(server) }
        return Engine(model: components.model, server: components.server, jail: try components.jailRunner(timeout: timeout))
    }

    func shutdown() async {
        await server?.stop()
    }

    /// Runs `body`, then clears the progress line and stops the embedded server whether
    /// it returned or threw: no command may leave a llama-server behind.
    func run<T>(clearing bar: ProgressBar? = nil, _ body: () async throws -> T) async throws -> T {
        let value: T
        do {
            value = try await body()
        } catch {
            bar?.clear()
            await shutdown()
            throw error
        }
        bar?.clear()
        await shutdown()
        return value
    }

    /// Ctrl-C must not leave a 1 GB llama-server behind.
    private static func installSignalHandlers(_ server: EmbeddedServer) {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                Task {
                    await server.stop()
                    exit(128 + sig)
                }
            }
            source.resume()
            signalSources.append(source)
        }
    }
    nonisolated(unsafe) private static var signalSources: [any DispatchSourceSignal] = []
}

extension JailLimits {
    func with(wallSeconds: Double) -> JailLimits {
        var l = self
        l.wallSeconds = wallSeconds
        return l
    }
}

/// Errors that reach the user: one line saying what went wrong and what to do.
struct UserError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
