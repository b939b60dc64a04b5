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
    @Option(help: "Base URL of an OpenAI-compatible or llama.cpp server (default: the embedded llama-server).")
    var endpoint: String?

    @Option(help: "Wire protocol of --endpoint: llama (native /completion) or openai (/v1/completions).")
    var api: APIFlavor?

    @Option(help: "Model name sent to an OpenAI-compatible endpoint.")
    var modelName: String?

    @Flag(help: "The endpoint ignores `n`: send one request per candidate.")
    var noN = false

    @Option(help: "Seconds to wait for one LLM call (a whole program on a busy 2-core machine can take minutes).")
    var llmTimeout: Double?

    @Option(help: "The embedded model: \(EmbeddedModel.allCases.map(\.rawValue).joined(separator: " or ")) (fetched by scripts/bootstrap).")
    var model: EmbeddedModel?

    @Option(help: "A GGUF file for the embedded server, instead of --model.")
    var modelPath: String?

    @Option(help: "The llama-server binary the embedded server runs.")
    var llamaServer: String?

    @Option(help: "Embedded server: parallel slots, the ceiling on -k.")
    var slots: Int?

    @Option(help: "Embedded server: CPU threads.")
    var threads: Int?

    /// The options given, as configuration keys.
    var configFlags: [ConfigKey: String] {
        var f: [ConfigKey: String] = [:]
        if let endpoint { f[.endpoint] = endpoint }
        if let api { f[.api] = api.rawValue }
        if let modelName { f[.modelName] = modelName }
        if let llmTimeout { f[.llmTimeout] = String(llmTimeout) }
        if let model { f[.model] = model.rawValue }
        if let modelPath { f[.modelPath] = modelPath }
        if let llamaServer { f[.llamaServer] = llamaServer }
        if let slots { f[.slots] = String(slots) }
        if let threads { f[.threads] = String(threads) }
        return f
    }

    /// The same options for a `qcode serve` started in the background.
    var serveArguments: [String] {
        DaemonLauncher.serveArguments(configFlags) + (noN ? ["--no-n"] : [])
    }
}

/// The daemon's own settings, for the commands that start or find it.
struct DaemonFlags: ParsableArguments {
    @Option(help: "The daemon's socket (default: $XDG_RUNTIME_DIR/qcode/qcode.sock, else /tmp/qcode-$UID/qcode.sock).")
    var socket: String?

    @Option(help: "Solves the daemon runs at once.")
    var maxConcurrentSolves: Int?

    @Option(help: "Solves that may wait; past it a solve is refused as busy.")
    var maxQueuedSolves: Int?

    var configFlags: [ConfigKey: String] {
        var f: [ConfigKey: String] = [:]
        if let socket { f[.socket] = socket }
        if let maxConcurrentSolves { f[.maxConcurrentSolves] = String(maxConcurrentSolves) }
        if let maxQueuedSolves { f[.maxQueuedSolves] = String(maxQueuedSolves) }
        return f
    }
}

extension APIFlavor: ExpressibleByArgument {}
extension EmbeddedModel: ExpressibleByArgument {}

/// The resolved configuration, with a configuration error as a usage error.
func resolveConfiguration(_ flags: [ConfigKey: String]) throws -> Configuration.Resolved {
    do { return try Configuration.resolve(flags: flags) } catch { throw ValidationError(error.description) }
}

/// The warm parts of an in-process qcode command (`--no-daemon`, `bench`,
/// `sample`, `rollouts`), built by the same `Components` the daemon keeps.
struct Engine {
    let components: Components
    let configuration: Configuration

    var model: any LanguageModel { components.model }

    static func make(_ llm: LLMOptions) throws -> Engine {
        let config = try resolveConfiguration(llm.configFlags).values
        return Engine(components: Components.make(config, supportsN: !llm.noN), configuration: config)
    }

    func jail(timeout: Double) throws -> JailRunner { try components.jailRunner(timeout: timeout) }

    /// Runs `body`, then clears the progress line and stops the embedded server
    /// whether it returned, threw or was interrupted: no command may leave a
    /// llama-server behind (Ctrl-C included).
    func run<T>(clearing bar: ProgressBar? = nil, _ body: () async throws -> T) async throws -> T {
        let server = components.server
        var sources: [any DispatchSourceSignal] = []
        if let server {
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler {
                    Task {
                        bar?.clear()
                        await server.stop()
                        exit(128 + sig)
                    }
                }
                source.resume()
                sources.append(source)
            }
        }
        defer { sources.forEach { $0.cancel() } }
        let value: T
        do {
            value = try await body()
        } catch {
            bar?.clear()
            await components.shutdown()
            throw error
        }
        bar?.clear()
        await components.shutdown()
        return value
    }
}

/// Errors that reach the user: one line saying what went wrong and what to do.
struct UserError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
