import CodeDomain
import Foundation
import Logging
import Policy
import QStar
import RPC
import Sandbox

public struct DaemonSettings: Sendable {
    public var maxConcurrentSolves = 2
    public var maxQueuedSolves = 16
    public var maxFrame = FrameParser.defaultMaxFrame
    /// How long `stop()` lets cancelled requests answer before it closes connections.
    public var drainSeconds = 3.0
    public init() {}
    public init(_ config: DaemonConfig) {
        maxConcurrentSolves = config.int("max_concurrent_solves")
        maxQueuedSolves = config.int("max_queued_solves")
    }
}

/// The daemon: sessions over connections, dispatch, the solve queue, counters.
///
/// Each connection is one LSP session (initialize … shutdown, exit) and ends
/// without touching the others. Long requests run as tasks kept in a map from
/// request id, so `$/cancelRequest` and a disconnect cancel exactly that work,
/// down to the LLM call and the jail the search is waiting on.
public final class DaemonServer: Sendable {
    public let components: Components
    public let settings: DaemonSettings
    let queue: SolveQueue
    let state = ServerState()
    let logger: Logger

    public init(components: Components, settings: DaemonSettings = DaemonSettings(), logger: Logger = Logger(label: "qcode.daemon")) {
        self.components = components
        self.settings = settings
        self.queue = SolveQueue(capacity: settings.maxConcurrentSolves, maxWaiting: settings.maxQueuedSolves)
        self.logger = logger
    }

    // MARK: Connections

    /// Serves one connection until the peer leaves, sends `exit`, or the daemon stops.
    public func serve(_ connection: Connection) async {
        guard let session = await state.open(connection, server: self) else {
            connection.send(.response(id: nil, result: .failure(
                ResponseError(code: ErrorCode.serverStopping, message: "the daemon is stopping; start a new one"))))
            connection.close()
            return
        }
        do {
            for try await body in connection.bodies() {
                let keepGoing: Bool
                switch Message.decode(body) {
                case .failure(let f):
                    connection.send(.response(id: f.id, result: .failure(f.error)))
                    keepGoing = true
                case .success(let m):
                    keepGoing = await session.handle(m)
                }
                if !keepGoing { break }
            }
        } catch {
            logger.warning("connection \(session.id): \(error); closing it")
        }
        await session.cancelAll()
        connection.close()
        await state.close(session.id)
    }

    /// A client wired to this server through a socket pair: the full transport
    /// without a socket file.
    public func connectInProcess() throws -> RPCClient {
        let (client, server) = try UnixSocket.pair()
        let serverEnd = Connection(fd: server, maxFrame: settings.maxFrame)
        Task { await self.serve(serverEnd) }
        return RPCClient(connection: Connection(fd: client))
    }

    /// Listens on `path` (its folder made 0700, the socket 0600) and serves
    /// every peer of our own uid. Throws `SocketError.addressInUse` when a
    /// live daemon answers there.
    public func listen(socketPath path: String) throws {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let fd = try UnixSocket.listen(path)
        state.setListener(fd: fd, path: path)
        let me = getuid()
        let thread = Thread { [self] in
            while let peer = UnixSocket.accept(fd) {
                guard UnixSocket.peerUID(peer) == me else {
                    logger.warning("refused a peer of another uid (\(UnixSocket.peerUID(peer).map(String.init) ?? "unknown"))")
                    Glibc.close(peer)
                    continue
                }
                let connection = Connection(fd: peer, maxFrame: settings.maxFrame)
                Task { await self.serve(connection) }
            }
            Glibc.close(fd)
        }
        thread.start()
        logger.info("listening on \(path)")
    }

    /// Stops cleanly: no new connections, every request cancelled and
    /// answered (within `drainSeconds`), connections closed, the embedded
    /// llama-server stopped, the socket file removed. Idempotent.
    public func stop() async {
        guard state.beginStop() else {
            await waitUntilStopped()
            return
        }
        logger.info("stopping")
        if let fd = state.listenerFD { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        let sessions = await state.sessions
        for s in sessions { await s.cancelAll() }
        let drained = await withTimeout(settings.drainSeconds) {
            for s in sessions { await s.waitForRequests() }
        }
        if !drained { logger.warning("some requests did not finish within \(settings.drainSeconds) s of being cancelled") }
        for s in sessions {
            s.connection.flush()
            s.connection.close()
        }
        await components.shutdown()
        if let path = state.socketPath { unlink(path) }
        logger.info("stopped")
        await state.markStopped()
    }

    public func waitUntilStopped() async {
        await state.waitUntilStopped()
    }

    // MARK: Requests

    func status() async -> StatusResult {
        let usage = components.meter.total
        let jail = await components.jailStats
        let (running, waiting) = await queue.snapshot
        let counters = await state.counters
        return StatusResult(
            version: qcodeVersion, pid: Int(getpid()), socket: state.socketPath,
            uptimeSeconds: (Date().timeIntervalSince(state.started) * 10).rounded() / 10,
            requestsServed: counters.requests, solvesCompleted: counters.solves, connections: counters.connections,
            solvesRunning: running, solvesWaiting: waiting,
            tokens: .init(llmCalls: usage.calls, promptTokens: usage.promptTokens,
                          cachedPromptTokens: usage.cachedPromptTokens, generatedTokens: usage.generatedTokens),
            llm: await components.health(),
            caches: .init(jailRuns: jail.runs, jailCacheHits: jail.cacheHits,
                          jailHitRate: jail.runs + jail.cacheHits == 0 ? 0 : Double(jail.cacheHits) / Double(jail.runs + jail.cacheHits),
                          llmPromptCacheShare: usage.cacheShare))
    }

    func solve(_ p: SolveParams, id: RequestID, session: Int, connection: Connection) async throws -> SolveResult {
        let (task, options, value, timeout) = try p.resolved()
        let verifier: any ProgramVerifier
        do { verifier = try components.verifier(timeout: timeout) } catch { throw ResponseError.internalError("\(error)") }
        let token = p.workDoneToken ?? {
            switch id {
            case .int(let i): return .int(i)
            case .string(let s): return .string(s)
            }
        }()
        let tracker = BestProgram()
        let tracked = TrackingVerifier(base: verifier, best: tracker)
        let model = components.model
        let result = try await queue.withSlot(owner: session) {
            @Sendable func progress(_ value: JSONValue) {
                connection.send(.notification(method: Method.progress, params: .object(["token": token, "value": value])))
            }
            progress(.object(["kind": "begin", "title": .string("solving \(task.id)"), "cancellable": true]))
            let outcome = try await Solver(model: model, verifier: tracked).solve(task, options: options, value: value) { p in
                let best = tracker.program
                let report = SolveProgress(expansions: p.expansions, bestF: p.bestF.isFinite ? p.bestF : 0,
                                           generatedTokens: p.generatedTokens, bestPassed: p.bestPassed, bestProgram: best)
                if let v = try? JSONValue.encoding(report) { progress(v) }
            }
            try Task.checkCancellation()
            var asserts: [AssertResult] = []
            var verdict: String?
            if let program = outcome.program {
                let report = try await verifier.run(JailJob(program: program, tests: task.tests.joined(separator: "\n"), setup: task.setup))
                asserts = report.asserts
                verdict = report.outcome.rawValue
            }
            progress(.object(["kind": "end"]))
            return SolveResult(taskId: task.id, method: outcome.method.rawValue, value: outcome.valueModel, program: outcome.program,
                               passed: outcome.verification?.passed ?? 0, total: outcome.verification?.total ?? task.tests.count,
                               outcome: outcome.verification?.outcome ?? "no program", verdict: verdict, asserts: asserts,
                               statistics: outcome.statistics)
        }
        await state.solveCompleted()
        return result
    }

    func test(_ p: TestParams) async throws -> TestReport {
        let timeout = p.timeout ?? JailLimits.default.wallSeconds
        guard timeout > 0, timeout <= 3600 else { throw ResponseError.invalidParams("timeout must be between 0 and 3600 seconds") }
        let verifier: any ProgramVerifier
        do { verifier = try components.verifier(timeout: timeout) } catch { throw ResponseError.internalError("\(error)") }
        do {
            return try await verifier.run(JailJob(program: p.program, tests: p.tests, setup: p.setup ?? ""))
        } catch let e as JailError {
            throw ResponseError.internalError(e.description)
        }
    }
}

/// Races `body` against a deadline; true when `body` finished first.
func withTimeout(_ seconds: Double, _ body: @escaping @Sendable () async -> Void) async -> Bool {
    await withTaskGroup(of: Bool.self) { group in
        group.addTask { await body(); return true }
        group.addTask { try? await Task.sleep(for: .seconds(seconds)); return false }
        let first = await group.next() ?? false
        group.cancelAll()
        return first
    }
}

/// The best program the verifier has seen in this solve: `$/progress` shows
/// it. (A hook in `SearchProgress` carrying the best node's program would say
/// the same without wrapping the verifier.)
final class BestProgram: @unchecked Sendable {
    private let lock = NSLock()
    private var best: (program: String, passed: Int)?
    var program: String? { lock.withLock { best?.program } }
    func offer(_ program: String, passed: Int) {
        lock.withLock {
            if best == nil || passed > best!.passed { best = (program, passed) }
        }
    }
}

struct TrackingVerifier: ProgramVerifier {
    let base: any ProgramVerifier
    let best: BestProgram
    func run(_ job: JailJob) async throws -> TestReport {
        let report = try await base.run(job)
        best.offer(job.program, passed: report.passed)
        return report
    }
}

// MARK: - Shared state

final class ServerState: @unchecked Sendable {
    let started = Date()
    private let lock = NSLock()
    private var _listenerFD: Int32?
    private var _socketPath: String?
    private var stopping = false
    private let registry = Registry()

    var listenerFD: Int32? { lock.withLock { _listenerFD } }
    var socketPath: String? { lock.withLock { _socketPath } }

    func setListener(fd: Int32, path: String) {
        lock.withLock {
            _listenerFD = fd
            _socketPath = path
        }
    }

    /// True for the caller that gets to run the stop.
    func beginStop() -> Bool {
        lock.withLock {
            defer { stopping = true }
            return !stopping
        }
    }
    var isStopping: Bool { lock.withLock { stopping } }

    func open(_ c: Connection, server: DaemonServer) async -> Session? {
        if isStopping { return nil }
        return await registry.open(c, server: server)
    }
    func close(_ id: Int) async { await registry.close(id) }
    var sessions: [Session] { get async { await registry.all } }
    var counters: (requests: Int, solves: Int, connections: Int) { get async { await registry.counters } }
    func served() async { await registry.served() }
    func solveCompleted() async { await registry.solveCompleted() }
    func markStopped() async { await registry.markStopped() }
    func waitUntilStopped() async { await registry.waitUntilStopped() }
}

actor Registry {
    private var sessions: [Int: Session] = [:]
    private var nextID = 1
    private var requests = 0
    private var solves = 0
    private var stopped = false
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []

    func open(_ c: Connection, server: DaemonServer) -> Session {
        let s = Session(id: nextID, connection: c, server: server)
        sessions[nextID] = s
        nextID += 1
        return s
    }
    func close(_ id: Int) { sessions[id] = nil }
    var all: [Session] { Array(sessions.values) }
    var counters: (requests: Int, solves: Int, connections: Int) { (requests, solves, sessions.count) }
    func served() { requests += 1 }
    func solveCompleted() { solves += 1 }
    func markStopped() {
        stopped = true
        for w in stopWaiters { w.resume() }
        stopWaiters = []
    }
    func waitUntilStopped() async {
        if stopped { return }
        await withCheckedContinuation { stopWaiters.append($0) }
    }
}
