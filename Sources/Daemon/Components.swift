import CodeDomain
import Foundation
import Policy
import Sandbox

/// Counts what the language model costs, across every solve the process runs.
public final class UsageMeter: @unchecked Sendable {
    private let lock = NSLock()
    private var usage = Usage()
    public init() {}
    public var total: Usage { lock.withLock { usage } }
    func add(_ u: Usage) { lock.withLock { usage += u } }
}

/// A model that reports its usage to a meter: `qcode/status` shows tokens
/// spent and the prefix-cache share from it.
public struct MeteredModel: LanguageModel {
    public let base: any LanguageModel
    public let meter: UsageMeter
    let gate: StartGate?
    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        try await gate?.ready()
        let response = try await base.complete(request)
        meter.add(response.usage)
        return response
    }
}

/// The warm parts of a qcode process: the language model (and the embedded
/// llama-server behind it, if any) and the jails with their result caches.
/// The daemon keeps one for its lifetime; `--no-daemon` builds one per command.
public final class Components: Sendable {
    public enum LLMKind: String, Sendable, Codable { case embedded, endpoint, injected }

    public let model: any LanguageModel
    public let meter: UsageMeter
    public let server: EmbeddedServer?
    public let endpoint: URL?
    public let kind: LLMKind
    private let makeVerifier: @Sendable (Double) throws -> any ProgramVerifier
    private let runners = RunnerCache()
    private let gate: StartGate?

    /// For tests and embedders: any model and verifier (scripted doubles need no LLM or jail).
    public init(model: any LanguageModel, verifier: @escaping @Sendable (Double) throws -> any ProgramVerifier) {
        let meter = UsageMeter()
        self.model = MeteredModel(base: model, meter: meter, gate: nil)
        self.gate = nil
        self.meter = meter
        self.server = nil
        self.endpoint = nil
        self.kind = .injected
        self.makeVerifier = verifier
    }

    private init(model: any LanguageModel, server: EmbeddedServer?, endpoint: URL?) {
        let meter = UsageMeter()
        self.gate = server.map(StartGate.init)
        self.model = MeteredModel(base: model, meter: meter, gate: gate)
        self.meter = meter
        self.server = server
        self.endpoint = endpoint
        self.kind = server != nil ? .embedded : .endpoint
        let runners = self.runners
        self.makeVerifier = { timeout in try runners.runner(timeout: timeout) }
    }

    /// The model from the configuration: an HTTP endpoint, else the embedded
    /// server (started lazily by the first completion, or by `warm()`).
    public static func make(_ config: DaemonConfig, supportsN: Bool = true) -> Components {
        if let url = config.endpoint {
            let options = EndpointOptions(flavor: APIFlavor(rawValue: config["api"]) ?? .openai, supportsN: supportsN,
                                          model: config["model_name"].isEmpty ? nil : config["model_name"],
                                          timeout: config.double("llm_timeout"))
            return Components(model: HTTPLanguageModel(baseURL: url, options: options), server: nil, endpoint: url)
        }
        let server = EmbeddedServer(settings: ServerSettings(threads: config.int("threads"), slots: config.int("slots"),
                                                             parentTie: Jail.locateLauncher()))
        let options = EndpointOptions(flavor: .llama, timeout: config.double("llm_timeout"))
        return Components(model: EmbeddedLanguageModel(server: server, options: options), server: server, endpoint: nil)
    }

    /// The verifier for programs allowed `timeout` seconds; jails with the
    /// same limits share one runner and so one result cache.
    public func verifier(timeout: Double) throws -> any ProgramVerifier {
        try makeVerifier(timeout)
    }

    /// The shared jail runner itself, for callers that need its type (the CLI's `bench`).
    public func jailRunner(timeout: Double) throws -> JailRunner {
        try runners.runner(timeout: timeout)
    }

    public var jailStats: (runs: Int, cacheHits: Int) {
        get async {
            var total = (runs: 0, cacheHits: 0)
            for r in runners.all {
                let s = await r.stats
                total.runs += s.runs
                total.cacheHits += s.cacheHits
            }
            return total
        }
    }

    /// Starts the embedded server in the background so the first solve does not wait for it.
    public func warm() {
        guard let gate else { return }
        Task { try? await gate.ready() }
    }

    public struct Health: Sendable, Codable {
        public var kind: LLMKind
        public var url: String?
        public var healthy: Bool
        public var detail: String
    }

    public func health() async -> Health {
        switch kind {
        case .injected:
            return Health(kind: kind, url: nil, healthy: true, detail: "model supplied in-process")
        case .endpoint:
            let ok = await HTTPLanguageModel(baseURL: endpoint!).health(timeout: 2)
            return Health(kind: kind, url: endpoint!.absoluteString, healthy: ok, detail: ok ? "/health 200" : "not answering")
        case .embedded:
            let running = await server!.isRunning
            let pid = await server!.pid
            return Health(kind: kind, url: nil, healthy: running,
                          detail: running ? "llama-server running (pid \(pid.map(String.init) ?? "?"))" : "llama-server not running (starts on the next solve)")
        }
    }

    /// Stops the embedded server: no llama-server outlives its qcode.
    public func shutdown() async {
        await server?.stop()
    }
}

final class RunnerCache: @unchecked Sendable {
    private let lock = NSLock()
    private var runners: [Double: JailRunner] = [:]

    func runner(timeout: Double) throws -> JailRunner {
        try lock.withLock {
            if let r = runners[timeout] { return r }
            var limits = JailLimits.default
            limits.wallSeconds = timeout
            limits.cpuSeconds = max(1, min(limits.cpuSeconds, Int(timeout.rounded(.up))))
            let r = JailRunner(jail: try Jail(limits: limits))
            runners[timeout] = r
            return r
        }
    }

    var all: [JailRunner] { lock.withLock { Array(runners.values) } }
}

/// One start of the embedded server that every caller waits for. Concurrent
/// callers of `EmbeddedServer.ensureRunning()` can otherwise get its URL while
/// the model is still loading and see HTTP 503 (the fix belongs in Policy:
/// have `ensureRunning` await the start already in progress).
actor StartGate {
    let server: EmbeddedServer
    private var starting: Task<Void, any Error>?
    init(_ server: EmbeddedServer) { self.server = server }

    private var outcome: Result<Void, any Error>?

    /// Waits for the server to be up; a cancelled caller stops waiting at once.
    func ready() async throws {
        if case .success? = outcome { return }
        if starting == nil {
            outcome = nil
            let server = self.server
            starting = Task {
                do {
                    _ = try await server.ensureRunning()
                    self.finish(.success(()))
                } catch {
                    self.finish(.failure(error))
                }
            }
        }
        while true {
            switch outcome {
            case .success?: return
            case .failure(let e)?:
                starting = nil  // the next call tries again
                throw e
            case nil:
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    private func finish(_ r: Result<Void, any Error>) { outcome = r }
}
