import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

@_silgen_name("pipe2") private func c_pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

/// Which way a run went: `warm` in a pool's pre-set-up jail, `cold` in a jail set up for it.
public enum JailPath: String, Sendable, Codable, Hashable {
    case warm, cold
}

/// A pool of warm jails: one `qcode-jail --serve` process whose slots hold jails
/// already set up (namespaces, the read-only root, an interpreter with the harness
/// loaded) and fork a fresh program and judge for every job (sandbox/pool.c).
///
/// Why: a cold run spends most of its time building the jail and starting two
/// interpreters; a search verifies many programs and a user waits for each. The
/// pool also bounds how many programs run at once (its slots, one per core), and
/// serves the solves that share it in turn (`lane`), so one solve's burst of
/// siblings does not starve another's single program.
///
/// Anything the pool cannot do (not started yet, no shared libpython, no user
/// namespaces, a server that died) makes `run` answer nil, and the caller runs
/// the job cold: a job is never lost to the pool, only slower.
public final class JailPool: Sendable {
    public enum State: Sendable, Equatable {
        case off, starting, ready
        case unavailable(String)
    }

    /// The solve a task belongs to, for fair turns at the pool's slots; tasks
    /// outside any solve share lane 0.
    @TaskLocal public static var lane: UInt64 = 0

    public let slots: Int
    let template: Jail
    let gate: FairGate
    /// Tests only: the shared library to embed instead of the interpreter's own.
    let library: String?

    private struct Inner {
        var state: State = .off
        var server: PoolServer?
        /// Servers in a row that ended within a minute of their start.
        var youngDeaths = 0
        var readyWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let inner = Mutex(Inner())

    /// - Parameters:
    ///   - jail: where the launcher and the interpreter are (its limits do not matter:
    ///     each job brings its own).
    ///   - slots: jails kept warm, and so programs run at once.
    public convenience init(jail: Jail, slots: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.init(jail: jail, slots: slots, library: nil)
    }

    init(jail: Jail, slots: Int, library: String?) {
        self.template = jail
        self.slots = max(1, min(16, slots))
        self.gate = FairGate(capacity: self.slots)
        self.library = library
    }

    deinit {
        inner.withLock { $0.server }?.stop()
    }

    public var state: State { inner.withLock { $0.state } }

    /// The server process, while there is one (tests look for its zygotes).
    var serverPID: pid_t? { inner.withLock { $0.server?.pid } }

    /// Starts the pool in the background (no-op once started).
    public func warm() {
        let start = inner.withLock { s -> Bool in
            guard s.state == .off else { return false }
            s.state = .starting
            return true
        }
        if start { Task { await self.launch() } }
    }

    /// Starts the pool if needed and waits until it is ready or known unavailable.
    @discardableResult
    public func waitUntilSettled() async -> State {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            // Starting and waiting under one lock: a server that dies between the two leaves
            // the pool off, and a waiter added then would wait for a start that never comes.
            let (settled, start) = inner.withLock { s -> (Bool, Bool) in
                switch s.state {
                case .ready, .unavailable: return (true, false)
                case .starting:
                    s.readyWaiters.append(cont)
                    return (false, false)
                case .off:
                    s.state = .starting
                    s.readyWaiters.append(cont)
                    return (false, true)
                }
            }
            if start { Task { await self.launch() } }
            if settled { cont.resume() }
        }
        return state
    }

    /// Stops the server: every job it holds is killed, and the pool stays off.
    public func shutdown() {
        let server = inner.withLock { s -> PoolServer? in
            let server = s.server
            s.server = nil
            s.state = .unavailable("the pool was shut down")
            return server
        }
        server?.stop()
        settle()
    }

    private func settle() {
        let waiters = inner.withLock { s -> [CheckedContinuation<Void, Never>] in
            let w = s.readyWaiters
            s.readyWaiters = []
            return w
        }
        for w in waiters { w.resume() }
    }

    private func launch() async {
        let result: Result<PoolServer, Error>
        do {
            var code = try await HarnessCache.shared.compiled(for: template)
            if let library { code.library = library }
            guard !code.library.isEmpty else {
                throw PoolError("\(template.interpreter) has no shared library (libpython); install the package that "
                                + "provides it (Debian: libpython3-dev) for warm jails")
            }
            result = .success(try PoolServer.start(jail: template, slots: slots, library: code.library, version: code.version,
                                                   pool: self))
        } catch {
            result = .failure(error)
        }
        let begin = inner.withLock { s -> PoolServer? in
            switch result {
            case .success(let server):
                guard s.state == .starting else { return nil } // shut down meanwhile
                s.server = server
                return server
            case .failure(let error):
                s.state = .unavailable("\(error)")
                return nil
            }
        }
        if let begin {
            begin.begin()
        } else {
            if case .success(let server) = result { server.stop(); server.begin() } // begin reaps it once it ends
            settle()
        }
    }

    /// The server's news: ready, or gone for `why`.
    fileprivate func serverReady(_ server: PoolServer) {
        inner.withLock { s in
            if s.server === server && s.state == .starting { s.state = .ready }
        }
        settle()
    }

    fileprivate func serverEnded(_ server: PoolServer, why: String, unavailable: Bool) {
        inner.withLock { s in
            guard s.server === server else { return }
            s.server = nil
            // A server that says the pool cannot work here is believed; one that died is started again,
            // unless it keeps dying young (three in a row, each within a minute of its start): then
            // something here kills it, and restarting it would only make every job wait for it.
            s.youngDeaths = ContinuousClock.now - server.started > .seconds(60) ? 0 : s.youngDeaths + 1
            if unavailable || s.youngDeaths >= 3 {
                s.state = .unavailable(why)
            } else {
                s.state = .off
            }
        }
        settle()
    }

    /// Runs one job in a warm jail: the launcher's outputs, as a cold run has them;
    /// nil when the pool cannot take it (the caller runs it cold). Honours
    /// cancellation by having the server kill the job.
    func run(stdin: Data, limits: JailLimits) async throws -> LauncherOutput? {
        let server = inner.withLock { s -> PoolServer? in s.state == .ready ? s.server : nil }
        guard let server else {
            warm()
            return nil
        }
        let id = server.nextID()
        let reply = await withTaskCancellationHandler {
            await server.submit(id: id, stdin: stdin, limits: limits)
        } onCancel: {
            server.cancel(id: id)
        }
        switch reply {
        case .output(let output):
            try Task.checkCancellation()
            return output
        case .cancelled:
            throw CancellationError()
        case .failed:
            try Task.checkCancellation()
            return nil
        }
    }
}

struct PoolError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// One `qcode-jail --serve` process: requests go out on a socket (its fd 0), answers
/// come back on a pipe (its fd 1), read by a thread of its own so no wait ever
/// blocks Swift's cooperative pool.
final class PoolServer: Sendable {
    enum Reply: Sendable {
        case output(LauncherOutput)
        case failed(String)
        case cancelled
    }

    private struct Pending {
        var cont: CheckedContinuation<Reply, Never>
        /// Past this, a silent server is presumed wedged and killed.
        var deadline: ContinuousClock.Instant
    }

    private struct State {
        var pending: [UInt64: Pending] = [:]
        var nextID: UInt64 = 0
        var ended = false
        var stderr = Data()
    }

    let pid: pid_t
    let started = ContinuousClock.now
    private let requests: Int32
    private let answers: Int32
    private let diagnostics: Int32
    private let state = Mutex(State())
    private let writer = DispatchQueue(label: "qcode.jail.pool.write")
    private weak let pool: JailPool?

    private init(pid: pid_t, requests: Int32, answers: Int32, diagnostics: Int32, pool: JailPool) {
        self.pid = pid
        self.requests = requests
        self.answers = answers
        self.diagnostics = diagnostics
        self.pool = pool
    }

    /// The fds close only here, once nothing (reader, queued writes) can use them.
    deinit {
        close(requests)
        close(answers)
        close(diagnostics)
    }

    static func start(jail: Jail, slots: Int, library: String, version: String, pool: JailPool) throws -> PoolServer {
        var args = ["--serve", "--slots", String(slots), "--libpython", library, "--python", jail.interpreter,
                    "--pyversion", version]
        for dir in jail.extraReadOnly { args += ["--ro", dir] }
        if let cgroup = ProcessInfo.processInfo.environment["QCODE_JAIL_CGROUP"], cgroup.hasPrefix("/") {
            args += ["--cgroup", cgroup]
        }
        // fd 0 a socket (MSG_NOSIGNAL: a dead server is an error, not a SIGPIPE); 1 and 2 pipes.
        var sv: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv) == 0 else {
            throw JailError.spawnFailed("socketpair", errno: errno)
        }
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        guard c_pipe2(&out, O_CLOEXEC) == 0, c_pipe2(&err, O_CLOEXEC) == 0 else {
            let e = errno
            for fd in sv + out + err where fd >= 0 { close(fd) }
            throw JailError.spawnFailed("pipe", errno: e)
        }
        defer { close(sv[1]); close(out[1]); close(err[1]) } // the server's own ends
        do {
            let pid = try Spawner.spawn(jail.launcher.path, arguments: args, fds: [sv[1], out[1], err[1]])
            return PoolServer(pid: pid, requests: sv[0], answers: out[0], diagnostics: err[0], pool: pool)
        } catch {
            close(sv[0]); close(out[0]); close(err[0])
            throw error
        }
    }

    /// Starts reading answers and sends the zygote's setup. Separate from `start`
    /// so the pool knows this server before its first answer can arrive.
    func begin() {
        let reader = Thread { self.readLoop() }
        reader.name = "qcode.jail.pool"
        reader.start()
        send("S", 0, Data(Harness.zygote().utf8))
    }

    func nextID() -> UInt64 {
        state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
    }

    func submit(id: UInt64, stdin: Data, limits: JailLimits) async -> Reply {
        let line = "\(limits.wallSeconds) \(limits.cpuSeconds) \(limits.memoryBytes) \(limits.fileSizeBytes) "
            + "\(limits.maxProcesses) \(limits.maxOpenFiles) \(limits.outputBytes) \(limits.tmpfsBytes)\n"
        return await withCheckedContinuation { (cont: CheckedContinuation<Reply, Never>) in
            let accepted = state.withLock { s -> Bool in
                guard !s.ended else { return false }
                s.pending[id] = Pending(cont: cont, deadline: .now + .seconds(limits.wallSeconds + 15))
                return true
            }
            guard accepted else { return cont.resume(returning: .failed("the warm pool's server has ended")) }
            send("J", id, Data(line.utf8) + stdin)
        }
    }

    func cancel(id: UInt64) {
        send("C", id, Data())
    }

    /// Closing its fd 0 ends the server, which kills every job and zygote it holds.
    func stop() {
        writer.async { shutdown(self.requests, Int32(SHUT_WR)) }
    }

    private func send(_ kind: Character, _ id: UInt64, _ body: Data) {
        let frame = Data("\(kind) \(id) \(body.count)\n".utf8) + body
        writer.async {
            frame.withUnsafeBytes { raw in
                var off = 0
                while off < raw.count {
                    let n = Glibc.send(self.requests, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { return } // the server is gone: the reader sees it end and fails what is pending
                    off += n
                }
            }
        }
    }

    /// Reads answers until the server ends; then fails whatever is pending (those
    /// jobs run cold) and reaps the server. Runs on its own thread.
    private func readLoop() {
        var buffer = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        var open: [Int32] = [answers, diagnostics]
        var unavailable: String?
        var killed = false
        while open.contains(answers) {
            var pfds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let n = poll(&pfds, nfds_t(pfds.count), 1000)
            if n < 0 && errno != EINTR { break }
            for p in pfds where p.revents != 0 {
                let got = read(p.fd, &chunk, chunk.count)
                if got < 0 && errno == EINTR { continue }
                if got <= 0 { open.removeAll { $0 == p.fd }; continue }
                if p.fd == diagnostics {
                    state.withLock { s in
                        s.stderr.append(contentsOf: chunk[0..<got])
                        if s.stderr.count > 16384 { s.stderr.removeFirst(s.stderr.count - 16384) }
                    }
                    continue
                }
                buffer.append(contentsOf: chunk[0..<got])
                while let frame = Self.nextFrame(&buffer) {
                    switch frame.kind {
                    case "P": pool?.serverReady(self)
                    case "U": unavailable = String(decoding: frame.body, as: UTF8.self)
                    case "R": resolve(frame.id, Self.output(frame.body).map(Reply.output) ?? .failed("a malformed answer"))
                    case "E":
                        let why = String(decoding: frame.body, as: UTF8.self)
                        resolve(frame.id, why == "cancelled" ? .cancelled : .failed(why))
                    default: break
                    }
                }
            }
            // A server silent well past a job's wall clock is wedged: end it, the jobs run cold.
            let overdue = state.withLock { s in s.pending.values.contains { $0.deadline < .now } }
            if overdue && !killed {
                killed = true
                kill(pid, SIGKILL)
            }
        }
        shutdown(requests, Int32(SHUT_RDWR))
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let (pending, tail) = state.withLock { s -> ([Pending], String) in
            s.ended = true
            let p = Array(s.pending.values)
            s.pending = [:]
            return (p, String(decoding: s.stderr.suffix(400), as: UTF8.self))
        }
        let ending = status & 0x7f != 0 ? "was killed by signal \(status & 0x7f)" : "exited with status \((status >> 8) & 0xff)"
        let why = (unavailable ?? "the warm pool's server \(ending)")
            + (tail.isEmpty ? "" : "; its stderr: \(tail.trimmingCharacters(in: .whitespacesAndNewlines))")
        for p in pending { p.cont.resume(returning: .failed(why)) }
        pool?.serverEnded(self, why: why, unavailable: unavailable != nil)
    }

    private func resolve(_ id: UInt64, _ reply: Reply) {
        let cont = state.withLock { $0.pending.removeValue(forKey: id)?.cont }
        cont?.resume(returning: reply)
    }

    struct Frame {
        var kind: Character
        var id: UInt64
        var body: Data
    }

    /// `<kind> <id> <length>\n` + length bytes, off the front of `buffer`.
    static func nextFrame(_ buffer: inout Data) -> Frame? {
        guard let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let head = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self).split(separator: " ")
        guard head.count == 3, let kind = head[0].first, let id = UInt64(head[1]), let length = Int(head[2]) else {
            buffer.removeAll()
            return Frame(kind: "U", id: 0, body: Data("the warm pool's server sent a malformed frame".utf8))
        }
        let start = buffer.index(after: nl)
        guard buffer.distance(from: start, to: buffer.endIndex) >= length else { return nil }
        let end = buffer.index(start, offsetBy: length)
        let frame = Frame(kind: kind, id: id, body: Data(buffer[start..<end]))
        buffer.removeSubrange(buffer.startIndex..<end)
        return frame
    }

    /// "<status> <stdout> <stderr> <results>\n" lengths, then the four.
    static func output(_ body: Data) -> LauncherOutput? {
        guard let nl = body.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let sizes = String(decoding: body[body.startIndex..<nl], as: UTF8.self).split(separator: " ").compactMap { Int($0) }
        guard sizes.count == 4, sizes.allSatisfy({ $0 >= 0 }) else { return nil }
        var at = body.index(after: nl)
        var parts: [Data] = []
        for size in sizes {
            guard body.distance(from: at, to: body.endIndex) >= size else { return nil }
            let end = body.index(at, offsetBy: size)
            parts.append(Data(body[at..<end]))
            at = end
        }
        return LauncherOutput(stdout: parts[1], stderr: parts[2], results: parts[3], status: parts[0], exitStatus: 0)
    }
}

/// At most `capacity` holders at once. Waiters are served round-robin across
/// lanes and first come, first served within one: a solve that submits eight
/// programs gets its turns between another solve's, not all before them.
actor FairGate {
    let capacity: Int
    private var active = 0
    private var waiting: [UInt64: [(id: UInt64, cont: CheckedContinuation<Void, Error>)]] = [:]
    /// Lanes with waiters, in the order they are served next.
    private var turns: [UInt64] = []
    private var nextID: UInt64 = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    func acquire(lane: UInt64) async throws {
        if active < capacity {
            active += 1
            return
        }
        nextID += 1
        let id = nextID
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, Error>) in
                if Task.isCancelled {
                    cont.resume(throwing: CancellationError())
                } else {
                    if waiting[lane, default: []].isEmpty { turns.append(lane) }
                    waiting[lane, default: []].append((id, cont))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id, lane: lane) }
        }
    }

    private func cancelWaiter(_ id: UInt64, lane: UInt64) {
        guard var queue = waiting[lane], let i = queue.firstIndex(where: { $0.id == id }) else { return }
        let cont = queue.remove(at: i).cont
        waiting[lane] = queue.isEmpty ? nil : queue
        if queue.isEmpty { turns.removeAll { $0 == lane } }
        cont.resume(throwing: CancellationError())
    }

    /// Hands the place straight to the next lane's first waiter, so `active` never
    /// dips and a newcomer cannot jump the queue.
    func release() {
        guard let lane = turns.first, var queue = waiting[lane], !queue.isEmpty else {
            active -= 1
            return
        }
        let next = queue.removeFirst()
        turns.removeFirst()
        if queue.isEmpty {
            waiting[lane] = nil
        } else {
            waiting[lane] = queue
            turns.append(lane)
        }
        next.cont.resume()
    }

    /// Waiters per lane, for tests of the order.
    var queued: Int { waiting.values.reduce(0) { $0 + $1.count } }
}
