import Basics
import CodeDomain
import Foundation
import Logging
import Policy
import QStar
import QVM
import RPC
import Sandbox
import Synchronization

public struct DaemonSettings: Sendable {
    public var maxConcurrentSolves = 2
    public var maxQueuedSolves = 16
    public var maxFrame = FrameParser.defaultMaxFrame
    /// How long `stop()` lets cancelled requests answer before it closes connections.
    public var drainSeconds = 3.0
    public init() {}
    /// Seconds between two `$/progress` reports of one solve: editors redraw
    /// on each, and a fast scripted model would otherwise flood the socket.
    public var progressInterval = 0.25
    public init(_ config: Configuration) {
        maxConcurrentSolves = config.maxConcurrentSolves
        maxQueuedSolves = config.maxQueuedSolves
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
    /// Loaded value models, shared by every solve (a QVM file is read once).
    let values = ValueModels()
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
        let drained = await finishes(within: settings.drainSeconds) {
            for s in sessions { await s.waitForRequests() }
        }
        if !drained { logger.warning("some requests did not finish within \(settings.drainSeconds) s of being cancelled") }
        for s in sessions {
            await s.connection.flush()
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
        let jail = await components.jailStats
        let (running, waiting) = await queue.snapshot
        let counters = await state.counters
        let usage = components.meter.total
        return StatusResult(
            version: qcodeVersion, pid: Int(getpid()), socket: state.socketPath,
            uptimeSeconds: (Date().timeIntervalSince(state.started) * 10).rounded() / 10,
            requestsServed: counters.requests, solvesCompleted: counters.solves, connections: counters.connections,
            solvesRunning: running, solvesWaiting: waiting, tokens: usage, llm: await components.health(),
            caches: .init(jailRuns: jail.runs, jailCacheHits: jail.cacheHits,
                          jailHitRate: jail.runs + jail.cacheHits == 0 ? 0 : Double(jail.cacheHits) / Double(jail.runs + jail.cacheHits),
                          llmPromptCacheShare: usage.cacheShare, jailWarmRuns: jail.warmRuns, jailPool: components.jailPool))
    }

    func solve(_ p: SolveParams, id: RequestID, session: Int, connection: Connection) async throws -> SolveResult {
        let (task, options) = try p.resolved()
        do { _ = try values.resolve(options.value) } catch {
            throw ResponseError.invalidParams("options.value: \(error)")
        }
        let verifier: any ProgramVerifier
        do { verifier = try components.verifier(timeout: options.timeout) } catch { throw ResponseError.internalError("\(error)") }
        let solver = Solver(model: components.model, verifier: verifier, values: values, planners: components.planners)
        let token = p.workDoneToken ?? id.json
        let throttle = ProgressThrottle(interval: settings.progressInterval)
        let result = try await queue.withSlot(owner: session) { slot in
            @Sendable func progress(_ value: JSONValue) {
                connection.send(.notification(method: Method.progress, params: .object(["token": token, "value": value])))
            }
            progress(.object(["kind": "begin", "title": .string("solving \(task.id)"), "cancellable": true]))
            // Its own lane at the jail pool: solves running together take turns at its slots.
            let result = try await JailPool.$lane.withValue(Self.nextLane()) {
                try await solver.solve(task, options: options, trace: p.trace ?? false, slot: slot) { report in
                    guard throttle.admit(), let value = try? JSONValue.encoding(report) else { return }
                    progress(value)
                }
            }
            try Task.checkCancellation()
            progress(.object(["kind": "end", "message": .string(result.summaryLine)]))
            return result
        }
        await state.solveCompleted()
        return result
    }

    private static let lanes = Mutex<UInt64>(0)
    /// Lane 0 is everything outside a solve (`qcode/test`).
    static func nextLane() -> UInt64 { lanes.withLock { $0 += 1; return $0 } }

    func test(_ p: TestParams) async throws -> TestReport {
        let timeout = p.timeout ?? JailLimits.default.wallSeconds
        guard timeout > 0, timeout <= 3600 else { throw ResponseError.invalidParams("timeout must be between 0 and 3600 seconds") }
        let verifier: any ProgramVerifier
        do { verifier = try components.verifier(timeout: timeout) } catch { throw ResponseError.internalError("\(error)") }
        do {
            return try await verifier.run(p.job)
        } catch let e as JailError {
            throw ResponseError.internalError(e.description)
        }
    }
}

/// Admits at most one report per interval (the first always).
public final class ProgressThrottle: Sendable {
    private let last = Mutex<ContinuousClock.Instant?>(nil)
    public let interval: Double
    public init(interval: Double) { self.interval = interval }
    public func admit() -> Bool {
        last.withLock { last in
            let now = ContinuousClock.now
            if let l = last, (now - l).seconds < interval { return false }
            last = now
            return true
        }
    }
}

// MARK: - Shared state

final class ServerState: Sendable {
    let started = Date()
    private struct Listener: Sendable {
        var fd: Int32?
        var path: String?
        var stopping = false
    }
    private let listener = Mutex(Listener())
    private let registry = Registry()

    var listenerFD: Int32? { listener.withLock { $0.fd } }
    var socketPath: String? { listener.withLock { $0.path } }

    func setListener(fd: Int32, path: String) {
        listener.withLock {
            $0.fd = fd
            $0.path = path
        }
    }

    /// True for the caller that gets to run the stop.
    func beginStop() -> Bool {
        listener.withLock { l in
            defer { l.stopping = true }
            return !l.stopping
        }
    }
    var isStopping: Bool { listener.withLock { $0.stopping } }

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
