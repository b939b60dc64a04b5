import Basics
import CodeDomain
import Foundation
import LSP
import Policy
import RPC
import Sandbox
import Synchronization
import Testing
import TestSupport
@testable import Daemon

/// An in-process editor wired to an in-process `qcode lsp` through a socket
/// pair: the full framing and both directions of LSP, with a daemon of its own
/// (scripted model, the real jail). It answers the server as an editor does:
/// `window/workDoneProgress/create` with null, `workspace/applyEdit` by applying
/// the edit to its copy of the document unless its version is newer (then
/// `applied: false`, as VS Code does), and a didChange for every edit applied.
final class TestEditor: Sendable {
    let rpc: RPCClient
    let daemon: DaemonServer
    let server: Task<Int32, Never>
    private let documents = Mutex<[String: (text: String, version: Int)]>([:])
    /// Every notification and request the server sent, in order.
    private let seen = Mutex<[(method: String, params: JSONValue?)]>([])
    /// The targets the connector was asked for (what settings reached the daemon launch).
    let targets = Targets()
    final class Targets: Sendable {
        let all = Mutex<[DaemonTarget]>([])
        var first: DaemonTarget? { all.withLock { $0.first } }
    }

    /// - Parameters:
    ///   - connector: replaces the in-process daemon connector (a daemon that cannot start).
    init(model: any LanguageModel, connector: DaemonConnector? = nil, configFile: URL? = nil) throws {
        var settings = DaemonSettings()
        settings.progressInterval = 0
        let daemon = DaemonServer(components: Components(model: model, verifier: { _ in try Jail() }), settings: settings)
        self.daemon = daemon
        let targets = self.targets
        var options = LSPServer.Options()
        options.environment = [:]
        options.configFile = configFile
        options.progressInterval = 0
        options.watchInterval = 0.2
        options.connector = connector ?? { target in
            targets.all.withLock { $0.append(target) }
            let client = try daemon.connectInProcess()
            _ = try await client.request("initialize", ["process_id": .int(Int(getpid()))])
            return client
        }
        let (editorEnd, serverEnd) = try UnixSocket.pair()
        let lsp = LSPServer(connection: Connection(fd: serverEnd), options: options)
        server = Task { await lsp.run() }
        let (rpc, incoming) = RPCClient.peer(Connection(fd: editorEnd))
        self.rpc = rpc
        Task { [weak self] in
            for await message in incoming { self?.receive(message) }
        }
    }

    private func receive(_ message: RPCClient.Incoming) {
        switch message {
        case .notification(let method, let params):
            seen.withLock { $0.append((method, params)) }
        case .request(let id, let method, let params):
            seen.withLock { $0.append((method, params)) }
            switch method {
            case LSPMethod.workDoneProgressCreate:
                rpc.respond(id, .success(.null))
            case LSPMethod.applyEdit:
                rpc.respond(id, .success(apply(params)))
            default:
                rpc.respond(id, .failure(.methodNotFound(method)))
            }
        case .invalid:
            Issue.record("the server sent something that is not JSON-RPC")
        }
    }

    private func apply(_ params: JSONValue?) -> JSONValue {
        guard let p = try? LSPCoding.decode(params, as: ApplyWorkspaceEditParams.self),
              let change = p.edit.documentChanges?.first else { return ["applied": false, "failureReason": "unreadable"] }
        let uri = change.textDocument.uri
        let applied: (text: String, version: Int)? = documents.withLock { docs in
            guard let doc = docs[uri], change.textDocument.version == doc.version else { return nil }
            let text = change.edits.reversed().reduce(doc.text) { $1.applied(to: $0) }
            docs[uri] = (text, doc.version + 1)
            return docs[uri]
        }
        guard let applied else { return ["applied": false, "failureReason": "the document is newer than the edit"] }
        notifyChange(uri, applied.text, applied.version)
        return ["applied": true]
    }

    // MARK: What the user does

    func initialize(_ options: JSONValue? = nil, processId: Int? = Int(getpid()), progress: Bool = true) async throws {
        var params: [String: JSONValue] = [
            "capabilities": ["window": ["workDoneProgress": .bool(progress)],
                             "workspace": ["applyEdit": true, "workspaceEdit": ["documentChanges": true]]],
            "clientInfo": ["name": "test-editor"],
        ]
        if let processId { params["processId"] = .int(processId) }
        if let options { params["initializationOptions"] = options }
        _ = try await rpc.request(LSPMethod.initialize, .object(params))
        rpc.notify(LSPMethod.initialized, [:])
    }

    func open(_ uri: String, _ text: String) {
        documents.withLock { $0[uri] = (text, 1) }
        rpc.notify(LSPMethod.didOpen, try? LSPCoding.value(DidOpenTextDocumentParams(textDocument: .init(uri: uri, version: 1, text: text))))
    }

    /// The user types: the whole new text, the next version.
    func type(_ uri: String, _ text: String) {
        let version = documents.withLock { docs -> Int in
            let v = (docs[uri]?.version ?? 0) + 1
            docs[uri] = (text, v)
            return v
        }
        notifyChange(uri, text, version)
    }

    private func notifyChange(_ uri: String, _ text: String, _ version: Int) {
        rpc.notify(LSPMethod.didChange, try? LSPCoding.value(DidChangeTextDocumentParams(
            textDocument: .init(uri: uri, version: version), contentChanges: [.init(text: text)])))
    }

    func text(_ uri: String) -> String? { documents.withLock { $0[uri]?.text } }
    func version(_ uri: String) -> Int? { documents.withLock { $0[uri]?.version } }

    func codeActions(_ uri: String, line: Int, character: Int = 0, only: [String]? = nil) async throws -> [LSPCodeAction] {
        let at = Position(line: line, character: character)
        let params = CodeActionParams(textDocument: .init(uri: uri), range: .init(start: at, end: at), context: .init(only: only))
        return try LSPCoding.decode(try await rpc.request(LSPMethod.codeAction, LSPCoding.value(params)), as: [LSPCodeAction].self)
    }

    /// Implements answered so far: each has sent its progress end.
    private let implementsAnswered = Atomic<Int>(0)

    /// The command's answer. For an implement, also everything the server sent
    /// before it: responses overtake the notifications still queued for
    /// `receive`, and the server's last notification of an implement is its
    /// progress end, so this waits for that.
    func execute(_ command: Command, id: RequestID? = nil) async throws -> JSONValue {
        let answer: Result<JSONValue, any Error>
        do {
            answer = .success(try await rpc.request(
                LSPMethod.executeCommand, LSPCoding.value(ExecuteCommandParams(command: command.command, arguments: command.arguments)), id: id))
        } catch {
            answer = .failure(error)
        }
        if command.command == LSPCommand.implement {
            let n = implementsAnswered.add(1, ordering: .sequentiallyConsistent).newValue
            try await eventually("the progress end of implement \(n)") { self.progress().filter { $0.kind == .end }.count >= n }
        }
        return try answer.get()
    }

    // MARK: What the user sees

    var methods: [String] { seen.withLock { $0.map(\.method) } }

    func progress(_ token: JSONValue? = nil) -> [WorkDoneProgress] {
        seen.withLock { all in
            all.filter { $0.method == LSPMethod.progress && (token == nil || $0.params?["token"] == token) }
                .compactMap { try? LSPCoding.decode($0.params?["value"], as: WorkDoneProgress.self) }
        }
    }

    var messages: [ShowMessageParams] {
        seen.withLock { $0.filter { $0.method == LSPMethod.showMessage }.compactMap { try? LSPCoding.decode($0.params, as: ShowMessageParams.self) } }
    }

    var edits: [ApplyWorkspaceEditParams] {
        seen.withLock { $0.filter { $0.method == LSPMethod.applyEdit }.compactMap { try? LSPCoding.decode($0.params, as: ApplyWorkspaceEditParams.self) } }
    }

    func waitForMessage(containing text: String) async throws {
        try await eventually("a message containing '\(text)'") { self.messages.contains { $0.message.contains(text) } }
    }

    func waitForProgress(_ kind: WorkDoneProgress.Kind, containing text: String = "") async throws {
        try await eventually("progress \(kind.rawValue) '\(text)'") {
            self.progress().contains { $0.kind == kind && (text.isEmpty || ($0.message ?? "").contains(text)) }
        }
    }

    /// What the daemon says is running, asked on a connection of its own.
    func daemonStatus() async throws -> StatusResult {
        let client = try daemon.connectInProcess()
        defer { client.close() }
        _ = try await client.request("initialize", [:])
        return try await client.request("qcode/status").decode(StatusResult.self)
    }

    /// Ends the session as an editor does, and the server's exit status.
    func quit(shutdown: Bool = true) async throws -> Int32 {
        if shutdown { _ = try await rpc.request(LSPMethod.shutdown) }
        rpc.notify(LSPMethod.exit)
        let status = try await within(30, "the server to exit") { await self.server.value }
        rpc.close()
        return status
    }
}

/// Answers program requests with a body for `double`; with `gate`, only once the test opens it.
final class BodyModel: LanguageModel {
    let body: String
    let gated: Bool
    private let open = Mutex(false)
    let started = Atomic<Int>(0)

    init(body: String = "    return x * 2\n", gated: Bool = false) {
        self.body = body
        self.gated = gated
    }

    func release() { open.withLock { $0 = true } }

    func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        started.add(1, ordering: .sequentiallyConsistent)
        while gated && !open.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        let text = request.stop == ["\n"] ? body.split(separator: "\n").first.map(String.init) ?? "" : body + "\n\nprint(double(2))\n```"
        let choice = CompletionChoice(text: text, tokenLogprobs: [-0.1], finish: .stop, tokens: 4)
        return CompletionResponse(choices: Array(repeating: choice, count: request.n), cost: Cost(llmCalls: 1, generatedTokens: 4))
    }

    func waitForCalls(_ n: Int) async throws {
        try await eventually("\(n) model calls to start") { started.load(ordering: .sequentiallyConsistent) >= n }
    }
}
