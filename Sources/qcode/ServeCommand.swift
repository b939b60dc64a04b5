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

    func configuration(_ llm: LLMOptions? = nil) throws -> Configuration {
        var flags = llm?.configFlags ?? [:]
        if let socket { flags[.socket] = socket }
        return try resolveConfiguration(flags).values
    }

    /// A connected, initialized client, starting the daemon if needed.
    /// `check` and `test` start it `--lazy`: they need no LLM, so the
    /// llama-server waits for the first solve.
    func client(_ llm: LLMOptions? = nil, name: String) async throws -> RPCClient {
        let config = try configuration(llm)
        let serveArguments = llm.map { $0.serveArguments } ?? ["--lazy"]
        if let llm, !llm.configFlags.isEmpty || llm.noN, DaemonLauncher.isRunning(socket: config.socket) {
            FileHandle.standardError.write(Data(("qcode: a daemon is already running on \(config.socket) with its own LLM settings; "
                + "your LLM flags apply to a new one (`qcode stop` first) or with --no-daemon\n").utf8))
        }
        do {
            guard let client = try await DaemonLauncher.connect(
                socket: config.socket, serveArguments: serveArguments, logFile: config.logFile, clientName: name) else {
                throw UserError("no qcode daemon on \(config.socket)")
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
    } catch is RPCClient.ClientError {
        // The daemon died under the request (a crash, a kill -9): say so, where its log is, and that retrying is safe.
        let log = (try? resolveConfiguration([:]).values.logFile) ?? "the daemon log"
        throw UserError("the qcode daemon went away before it answered (it crashed or was killed): see \(log); "
            + "run the command again to start a new daemon, or pass --no-daemon")
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the qcode daemon: JSON-RPC over a Unix socket for the CLI and editors (docs/protocol.md).",
        discussion: """
            Keeps the embedded llama-server, the jails and their caches warm. Other commands start it \
            in the background when none is running. SIGTERM or `qcode stop` stops it cleanly.
            """)

    @OptionGroup var daemonFlags: DaemonFlags
    @OptionGroup var llm: LLMOptions

    @Flag(help: "Start the embedded llama-server at the first solve rather than at once.")
    var lazy = false

    func run() async throws {
        DaemonLog.bootstrap()
        let config = try resolveConfiguration(llm.configFlags.merging(daemonFlags.configFlags) { $1 }).values
        let components = Components.make(config, supportsN: !llm.noN)
        let server = DaemonServer(components: components, settings: DaemonSettings(config))
        do {
            try server.listen(socketPath: config.socket)
        } catch let e as SocketError {
            FileHandle.standardError.write(Data("qcode serve: \(e)\n".utf8))
            throw ExitCode(2)
        }
        print("qcode daemon \(qcodeVersion) (pid \(getpid())) listening on \(config.socket); LLM: \(config.llmDescription)")
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
