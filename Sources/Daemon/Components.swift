import Basics
import CodeDomain
import Foundation
import Policy
import QStar
import Sandbox
import Synchronization

/// Counts what the language model costs, across every solve the process
/// runs, and remembers the last error it gave: `qcode/status` shows both.
public final class UsageMeter: Sendable {
    private struct State {
        var total = Cost()
        var lastError: String?
        var lastErrorAt: Date?
    }
    private let state = Mutex(State())
    public init() {}
    public var total: Cost { state.withLock { $0.total } }
    public var lastError: (message: String, at: Date)? {
        state.withLock { s in s.lastError.map { ($0, s.lastErrorAt ?? Date()) } }
    }
    func add(_ cost: Cost) { state.withLock { $0.total += cost } }
    func failed(_ error: any Error) {
        state.withLock {
            $0.lastError = "\(error)"
            $0.lastErrorAt = Date()
        }
    }
}

/// A model that reports its usage to a meter.
public struct MeteredModel: LanguageModel {
    public let base: any LanguageModel
    public let meter: UsageMeter
    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        do {
            let response = try await base.complete(request)
            meter.add(response.cost)
            return response
        } catch {
            if !(error is CancellationError) { meter.failed(error) }
            throw error
        }
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
    /// What the LLM is ("embedded Qwen2.5-Coder-0.5B-Instruct Q4_K_M", an endpoint URL …).
    public let llmDescription: String
    /// The planners solves may use: `Planners.all`, or recording ones in tests.
    public let planners: [any SearchAlgorithm]
    private let makeVerifier: @Sendable (Double) throws -> any ProgramVerifier
    private let runners = RunnerCache()

    /// For tests and embedders: any model and verifier (scripted doubles need no LLM or jail).
    public init(model: any LanguageModel, verifier: @escaping @Sendable (Double) throws -> any ProgramVerifier,
                description: String = "model supplied in-process", planners: [any SearchAlgorithm] = Planners.all) {
        self.planners = planners
        let meter = UsageMeter()
        self.model = MeteredModel(base: model, meter: meter)
        self.meter = meter
        self.server = nil
        self.endpoint = nil
        self.kind = .injected
        self.llmDescription = description
        self.makeVerifier = verifier
    }

    private init(model: any LanguageModel, server: EmbeddedServer?, endpoint: URL?, description: String) {
        self.planners = Planners.all
        let meter = UsageMeter()
        self.model = MeteredModel(base: model, meter: meter)
        self.meter = meter
        self.server = server
        self.endpoint = endpoint
        self.kind = server != nil ? .embedded : .endpoint
        self.llmDescription = description
        let runners = self.runners
        self.makeVerifier = { timeout in try runners.runner(timeout: timeout) }
    }

    /// The model from the configuration: an HTTP endpoint, else the embedded
    /// server (started lazily by the first completion, or by `warm()`).
    public static func make(_ config: Configuration, supportsN: Bool = true) -> Components {
        if let url = config.endpointURL {
            let options = EndpointOptions(flavor: config.api, supportsN: supportsN,
                                          model: config.modelName.isEmpty ? nil : config.modelName, timeout: config.llmTimeout)
            return Components(model: HTTPLanguageModel(baseURL: url, options: options), server: nil, endpoint: url,
                              description: config.llmDescription)
        }
        let server = EmbeddedServer(settings: ServerSettings(
            binary: URL(fileURLWithPath: config.llamaServer), model: config.modelFile,
            fetchHint: config.modelPath.isEmpty ? config.model.bootstrapCommand : "set model_path to an existing GGUF file",
            threads: config.threads, slots: config.slots, parentTie: Jail.locateLauncher()))
        // One retry inside a call: a dead server is the embedded model's to restart, not the HTTP client's to wait for.
        let options = EndpointOptions(flavor: .llama, timeout: config.llmTimeout, retries: 1)
        return Components(model: EmbeddedLanguageModel(server: server, options: options), server: server, endpoint: nil,
                          description: config.llmDescription)
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

    public var jailStats: (runs: Int, cacheHits: Int, warmRuns: Int) {
        get async {
            var total = (runs: 0, cacheHits: 0, warmRuns: 0)
            for r in runners.all {
                let s = await r.stats
                total.runs += s.runs
                total.cacheHits += s.cacheHits
                total.warmRuns += s.warmRuns
            }
            return total
        }
    }

    /// The warm jail pool's state ("ready", "starting", "unavailable: why"), nil before any jail was made.
    public var jailPool: String? {
        guard let pool = runners.pool else { return nil }
        switch pool.state {
        case .off: return "off"
        case .starting: return "starting"
        case .ready: return "ready (\(pool.slots) slots)"
        case .unavailable(let why): return "unavailable: \(why)"
        }
    }

    /// Starts the embedded server and the warm jail pool in the background so
    /// the first solve does not wait for them; concurrent callers wait for this same start.
    public func warm() {
        try? runners.makePool()?.warm()
        guard let server else { return }
        Task { _ = try? await server.ensureRunning() }
    }

    public struct Health: Sendable, Codable {
        public var kind: LLMKind
        public var url: String?
        /// The model in use.
        public var model: String
        public var healthy: Bool
        public var detail: String
        public var lastError: String?
    }

    public func health() async -> Health {
        var h: Health
        switch kind {
        case .injected:
            h = Health(kind: kind, url: nil, model: llmDescription, healthy: true, detail: "model supplied in-process")
        case .endpoint:
            let ok = await HTTPLanguageModel(baseURL: endpoint!).health(timeout: 2)
            h = Health(kind: kind, url: endpoint!.absoluteString, model: llmDescription, healthy: ok,
                       detail: ok ? "/health 200" : "not answering")
        case .embedded:
            let running = await server!.isRunning
            let pid = await server!.pid
            let restarts = await server!.restarts
            h = Health(kind: kind, url: nil, model: llmDescription, healthy: running,
                       detail: (running ? "llama-server running (pid \(pid.map(String.init) ?? "?"))"
                                        : "llama-server not running (starts on the next solve)")
                           + (restarts > 0 ? ", restarted \(restarts)×" : ""))
        }
        if let e = meter.lastError {
            h.lastError = "\(ISO8601DateFormatter().string(from: e.at)): \(e.message)"
        }
        return h
    }

    /// Stops the embedded server and the jail pool: no llama-server or jail outlives its qcode.
    public func shutdown() async {
        runners.pool?.shutdown()
        await server?.stop()
    }
}

/// One jail runner per time limit, created on first use: solves with the same
/// limits share a runner and so its result cache. Every runner runs in one
/// warm pool, which bounds the runs of all of them together and takes the
/// solves in turn.
final class RunnerCache: Sendable {
    private struct State {
        var runners: [Double: JailRunner] = [:]
        var pool: JailPool?
    }
    private let state = Mutex(State())

    func runner(timeout: Double) throws -> JailRunner {
        let pool = try makePool()
        pool?.warm() // a command that needs a jail needs it soon: its first runs go cold until the pool is ready
        return try state.withLock { s in
            if let r = s.runners[timeout] { return r }
            var limits = JailLimits.default
            limits.wallSeconds = timeout
            limits.cpuSeconds = max(1, min(limits.cpuSeconds, Int(timeout.rounded(.up))))
            var jail = try Jail(limits: limits)
            jail.pool = pool
            let r = JailRunner(jail: jail)
            s.runners[timeout] = r
            return r
        }
    }

    /// The pool, made (not started) on first use; nil without a launcher, or
    /// when `QCODE_JAIL_POOL=off` asks for cold jails only.
    @discardableResult
    func makePool() throws -> JailPool? {
        if ProcessInfo.processInfo.environment["QCODE_JAIL_POOL"] == "off" { return nil }
        if let pool = state.withLock({ $0.pool }) { return pool }
        let pool = JailPool(jail: try Jail())
        return state.withLock { s in
            if s.pool == nil { s.pool = pool }
            return s.pool
        }
    }

    var pool: JailPool? { state.withLock { $0.pool } }
    var all: [JailRunner] { state.withLock { Array($0.runners.values) } }
}
