import ArgumentParser
import CodeDomain
import Foundation
import Policy
import Sandbox

/// Where completions come from: a configured endpoint, or the embedded server.
struct LLMOptions: ParsableArguments {
    @Option(help: "Base URL of an OpenAI-compatible or llama.cpp server (default: $QCODE_ENDPOINT, else the embedded llama-server).")
    var endpoint: String?

    @Option(help: "Wire protocol of --endpoint: llama (native /completion) or openai (/v1/completions).")
    var api: APIFlavor?

    @Option(help: "Model name sent to an OpenAI-compatible endpoint.")
    var modelName: String?

    @Flag(help: "The endpoint ignores `n`: send one request per candidate.")
    var noN = false

    @Option(help: "Seconds to wait for one LLM call (a whole program on a busy 2-core machine can take minutes).")
    var llmTimeout: Double = 600

    @Option(help: "Embedded server: parallel slots (the ceiling on -k).")
    var slots: Int = 8

    @Option(help: "Embedded server: CPU threads.")
    var threads: Int = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 4))
}

extension APIFlavor: ExpressibleByArgument {}

/// The warm parts of one qcode process: the language model (and the embedded
/// server behind it, if any) and the jail.
struct Engine {
    let model: any LanguageModel
    let server: EmbeddedServer?
    let jail: JailRunner

    static func make(_ llm: LLMOptions, timeout: Double = 10) throws -> Engine {
        let jail = JailRunner(jail: try Jail(limits: JailLimits.default.with(wallSeconds: timeout)))
        let env = ProcessInfo.processInfo.environment
        if let endpoint = llm.endpoint ?? env["QCODE_ENDPOINT"], !endpoint.isEmpty {
            guard let url = URL(string: endpoint), url.scheme != nil else {
                throw ValidationError("--endpoint must be a URL such as http://127.0.0.1:8080, not '\(endpoint)'")
            }
            let flavor = llm.api ?? APIFlavor(rawValue: env["QCODE_API"] ?? "") ?? .openai
            let options = EndpointOptions(flavor: flavor, supportsN: !llm.noN, model: llm.modelName, timeout: llm.llmTimeout)
            return Engine(model: HTTPLanguageModel(baseURL: url, options: options), server: nil, jail: jail)
        }
        let server = EmbeddedServer(settings: ServerSettings(threads: llm.threads, slots: llm.slots))
        Engine.installSignalHandlers(server)
        let options = EndpointOptions(flavor: .llama, timeout: llm.llmTimeout)
        return Engine(model: EmbeddedLanguageModel(server: server, options: options), server: server, jail: jail)
    }

    func shutdown() async {
        await server?.stop()
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
