import ArgumentParser
import Daemon
import Foundation
import RPC

/// Options of every command that can talk to the daemon.
struct DaemonOptions: ParsableArguments {
    @Flag(help: "Run in this process instead of asking the qcode daemon (which is started when none runs).")
    var noDaemon = false

    @Option(help: "The daemon's socket (default: $QCODE_SOCKET, config.toml, else $XDG_RUNTIME_DIR/qcode/qcode.sock).")
    var socket: String?

    func config(_ llm: LLMOptions? = nil) throws -> DaemonConfig {
        var flags = llm?.configFlags ?? [:]
        if let socket { flags["socket"] = socket }
        do { return try DaemonConfig.resolve(flags: flags) } catch { throw ValidationError("\(error)") }
    }

    /// A connected, initialized client, starting the daemon if needed.
    /// `check` and `test` start it `--lazy`: they need no LLM, so the
    /// llama-server waits for the first solve.
    func client(_ llm: LLMOptions? = nil, name: String) async throws -> RPCClient {
        let config = try config(llm)
        let serveArguments = llm.map { $0.serveArguments } ?? ["--lazy"]
        if let llm, !llm.configFlags.isEmpty || llm.noN, DaemonLauncher.isRunning(socket: config.socketPath) {
            FileHandle.standardError.write(Data(("qcode: a daemon is already running on \(config.socketPath) with its own LLM settings; "
                + "your LLM flags apply to a new one (`qcode stop` first) or with --no-daemon\n").utf8))
        }
        do {
            guard let client = try await DaemonLauncher.connect(
                socket: config.socketPath, serveArguments: serveArguments, logFile: config["log_file"], clientName: name) else {
                throw UserError("no qcode daemon on \(config.socketPath)")
            }
            return client
        } catch let e as ResponseError {
            throw UserError("the daemon refused the session: \(e.message)")
        }
    }
}

/// Runs one daemon request; Ctrl-C sends `$/cancelRequest` and waits (briefly)
/// for the daemon's answer, so the search stops at once and nothing leaks.
func daemonRequest(_ client: RPCClient, _ method: String, _ params: JSONValue) async throws -> JSONValue {
    let request = Task { try await client.request(method, params) }
    let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    signal(SIGINT, SIG_IGN)
    source.setEventHandler { request.cancel() }
    source.resume()
    defer {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
    do {
        return try await request.value
    } catch let e as ResponseError where e.code == ErrorCode.requestCancelled {
        FileHandle.standardError.write(Data(((isatty(STDERR_FILENO) == 1 ? "\r\u{1B}[2K" : "") + "cancelled\n").utf8))
        throw ExitCode(130)
    } catch let e as ResponseError {
        throw UserError(e.message)
    }
}

extension SolveReport {
    /// The report of a solve the daemon ran: the same lines and JSON as in-process.
    init(_ r: SolveResult) {
        taskId = r.taskId
        method = r.method
        value = r.value
        program = r.program
        passed = r.passed
        total = r.total
        outcome = r.outcome
        statistics = r.statistics
    }
}

extension SearchOptions {
    var wireSettings: SolveSettings {
        var s = SolveSettings()
        s.k = k
        s.lambda = lambda
        s.agg = agg.rawValue
        s.value = value
        s.budgetTokens = budgetTokens
        s.budgetExpansions = budgetExpansions
        s.budgetSeconds = budgetSeconds
        s.samples = samples
        s.temperature = temperature
        s.seed = seed
        s.timeout = timeout
        return s
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the qcode daemon: JSON-RPC over a Unix socket for the CLI and editors (docs/protocol.md).",
        discussion: """
            Keeps the embedded llama-server, the jails and their caches warm. Other commands start it \
            in the background when none is running. SIGTERM or `qcode stop` stops it cleanly.
            """)

    @Option(help: "The socket to listen on (default: $XDG_RUNTIME_DIR/qcode/qcode.sock, else /tmp/qcode-$UID/qcode.sock).")
    var socket: String?

    @OptionGroup var llm: LLMOptions

    @Flag(help: "Start the embedded llama-server at the first solve rather than at once.")
    var lazy = false

    @Option(help: "Solves run at once (default 2).")
    var maxConcurrentSolves: Int?

    @Option(help: "Solves that may wait; past it a solve is refused as busy (default 16).")
    var maxQueuedSolves: Int?

    var flags: [String: String] {
        var f = llm.configFlags
        if let socket { f["socket"] = socket }
        if let maxConcurrentSolves { f["max_concurrent_solves"] = String(maxConcurrentSolves) }
        if let maxQueuedSolves { f["max_queued_solves"] = String(maxQueuedSolves) }
        return f
    }

    func run() async throws {
        DaemonLog.bootstrap()
        let config: DaemonConfig
        do { config = try DaemonConfig.resolve(flags: flags) } catch { throw ValidationError("\(error)") }
        let components = Components.make(config, supportsN: !llm.noN)
        let server = DaemonServer(components: components, settings: DaemonSettings(config))
        do {
            try server.listen(socketPath: config.socketPath)
        } catch let e as SocketError {
            FileHandle.standardError.write(Data("qcode serve: \(e)\n".utf8))
            throw ExitCode(1)
        }
        print("qcode daemon \(qcodeVersion) (pid \(getpid())) listening on \(config.socketPath)")
        if !lazy { components.warm() }
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { Task { await server.stop() } }
            source.resume()
            sources.append(source)
        }
        signal(SIGPIPE, SIG_IGN)
        await server.waitUntilStopped()
        sources.forEach { $0.cancel() }
        print("qcode daemon stopped")
    }
}
