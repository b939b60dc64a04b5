import CodeDomain
import Daemon
import Foundation
import RPC
import Synchronization

/// Which daemon to reach and with what settings.
public struct DaemonTarget: Sendable {
    /// The resolved configuration (socket, log file, the LLM a new daemon gets).
    public var configuration: Configuration
    /// The editor's configuration settings, passed to a daemon started for it.
    public var settings: [ConfigKey: String]
}

/// How the LSP server gets an initialized daemon client: `DaemonLink.launching`
/// (find the daemon, start one when none answers, as the CLI does), or in tests
/// an in-process daemon.
public typealias DaemonConnector = @Sendable (DaemonTarget) async throws -> RPCClient

/// The LSP server's one connection to the daemon, opened at the first solve
/// and again after the daemon went away. Every solve of the session shares it;
/// `$/progress` from the daemon is routed to the solve whose token it carries.
actor DaemonLink {
    private let connector: DaemonConnector
    private var client: RPCClient?
    private var connecting: Task<RPCClient, any Error>?
    private let routes = Mutex<[String: @Sendable (SolveProgress) -> Void]>([:])
    /// The LLM a running daemon was found with, when the editor asked for another.
    private(set) var mismatch: String?

    init(connector: @escaping DaemonConnector) {
        self.connector = connector
    }

    /// The production connector: connects to the configured socket, starting
    /// `qcode serve` with the editor's settings when no daemon answers.
    static let launching: DaemonConnector = { target in
        let c = target.configuration
        guard let client = try await DaemonLauncher.connect(
            socket: c.socket, serveArguments: DaemonLauncher.serveArguments(target.settings), logFile: c.logFile,
            clientName: "qcode lsp", otherwise: "or run `qcode doctor`") else {
            throw DaemonLauncher.LaunchError(description: "no qcode daemon on \(c.socket)")
        }
        return client
    }

    /// A live client, connecting (and starting the daemon) when there is none.
    func connected(_ target: DaemonTarget) async throws -> RPCClient {
        if let client, !client.connection.isClosed { return client }
        if let connecting { return try await connecting.value }
        let connector = self.connector
        let task = Task { try await connector(target) }
        connecting = task
        defer { connecting = nil }
        let fresh = try await task.value
        fresh.onNotification { [weak self] method, params in
            guard method == Method.progress, let token = params?["token"]?.stringValue,
                  let value = params?["value"], value["kind"] == "report",
                  let report = try? value.decode(SolveProgress.self),
                  let route = self?.routes.withLock({ $0[token] }) else { return }
            route(report)
        }
        client = fresh
        await checkLLM(fresh, target)
        return fresh
    }

    /// Progress reports for `token` go to `handler` until `unroute`.
    nonisolated func route(_ token: String, _ handler: @escaping @Sendable (SolveProgress) -> Void) {
        routes.withLock { $0[token] = handler }
    }

    nonisolated func unroute(_ token: String) {
        _ = routes.withLock { $0.removeValue(forKey: token) }
    }

    /// A daemon that was already running keeps the LLM it started with: when
    /// the editor asked for another, remember what to tell the user.
    private func checkLLM(_ client: RPCClient, _ target: DaemonTarget) async {
        mismatch = nil
        guard target.settings.keys.contains(where: EditorSettings.llmKeys.contains),
              let status = try? await client.request(Method.status).decode(StatusResult.self),
              status.llm.model != target.configuration.llmDescription else { return }
        mismatch = "the qcode daemon already running uses \(status.llm.model), not \(target.configuration.llmDescription) as your "
            + "settings ask: it keeps the LLM it started with. Run `qcode stop`, then implement again to start one with your settings"
    }

    /// The mismatch found at the last connect, once.
    func takeMismatch() -> String? {
        defer { mismatch = nil }
        return mismatch
    }

    /// Hangs up: the daemon cancels whatever this session still had running there.
    func close() {
        connecting?.cancel()
        client?.close()
        client = nil
    }
}
