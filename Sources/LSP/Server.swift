import CodeDomain
import Daemon
import Foundation
import PythonSyntax
import RPC

/// `qcode lsp`: an LSP 3.17 server for Python buffers that offers "Implement
/// with qcode" on a function stub and has the daemon write its body.
///
/// The editor is one peer, the daemon another; this actor holds what the
/// session knows (open documents at their versions, settings, the implements
/// running) and answers the editor in order. An implement is long (a search
/// with a local model), so it runs as a task kept under its request id, its
/// progress token and its function: `$/cancelRequest`,
/// `window/workDoneProgress/cancel` and `qcode.cancel` all cancel that task,
/// and cancelling it cancels the daemon's request, which stops the search's
/// LLM calls and jails.
public actor LSPServer {
    public struct Options: Sendable {
        public var connector: DaemonConnector = DaemonLink.launching
        /// Where the configuration beneath the editor's settings comes from.
        public var environment = ProcessInfo.processInfo.environment
        public var configFile: URL? = DaemonPaths.configFile
        /// Seconds between two progress reports of one implement.
        public var progressInterval = 0.25
        /// Seconds between two looks at whether the editor's process still runs.
        public var watchInterval = 1.0
        public init() {}
    }

    struct Document {
        var text: String
        var version: Int
    }

    struct Job {
        let request: RequestID
        let uri: String
        let function: String
        var token: JSONValue?
        let task: Task<Void, Never>
    }

    /// What the client said it can do.
    struct Features {
        var workDoneProgress = false
        var applyEdit = true
        var documentChanges = false
    }

    nonisolated let editor: RPCClient
    private let incoming: AsyncStream<RPCClient.Incoming>
    private let options: Options
    private let link: DaemonLink
    private var initialized = false
    /// `initialized` arrived: messages may reach the user (held until then).
    private var clientReady = false
    private var shutDown = false
    private var documents: [String: Document] = [:]
    private var settings = EditorSettings()
    private var features = Features()
    private var requests: [RequestID: Task<Void, Never>] = [:]
    /// Requests the client cancelled with `$/cancelRequest`: they are answered -32800.
    private var cancelledByClient: Set<RequestID> = []
    private var jobs: [Int: Job] = [:]
    private var nextJob = 1
    private var held: [ShowMessageParams] = []
    private var changeWaiters: [Int: (uri: String, resume: CheckedContinuation<Void, Never>)] = [:]
    private var nextWaiter = 1
    private var serving: Task<Int32, Never>?
    private var watcher: (any DispatchSourceTimer)?

    public init(connection: Connection, options: Options = Options()) {
        (editor, incoming) = RPCClient.peer(connection)
        self.options = options
        link = DaemonLink(connector: options.connector)
    }

    /// Serves until `exit`, the end of the input or the editor's death, then
    /// leaves nothing behind: running implements cancelled, the daemon
    /// connection closed. Returns the exit status LSP prescribes: 0 after
    /// `shutdown` and `exit`, else 1.
    public func run() async -> Int32 {
        let loop = Task { await self.serveMessages() }
        serving = loop
        let status = await loop.value
        await cleanUp()
        return status
    }

    private func serveMessages() async -> Int32 {
        for await message in incoming {
            switch message {
            case .invalid(let failure):
                editor.connection.send(.response(id: failure.id, result: .failure(failure.error)))
            case .request(let id, let method, let params):
                request(id, method, params)
            case .notification(LSPMethod.exit, _):
                return shutDown ? 0 : 1
            case .notification(let method, let params):
                notification(method, params)
            }
        }
        return 1
    }

    private func cleanUp() async {
        watcher?.cancel()
        let running = Array(requests.values)
        for task in running { task.cancel() }
        await link.close()
        // Their daemon requests fail at once now; an editor that stopped answering must not hold the exit up.
        await Self.wait(for: running, atMost: 3)
        await editor.connection.flush()
    }

    static func wait(for tasks: [Task<Void, Never>], atMost seconds: Double) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for t in tasks { await t.value } }
            group.addTask { try? await Task.sleep(for: .seconds(seconds)) }
            await group.next()
            group.cancelAll()
        }
    }

    // MARK: - Messages

    private func reply(_ id: RequestID, _ result: Result<JSONValue, ResponseError>) {
        editor.respond(id, result)
    }

    private func request(_ id: RequestID, _ method: String, _ params: JSONValue?) {
        if method == LSPMethod.initialize { return initialize(id, params) }
        guard initialized else { return reply(id, .failure(.notInitialized)) }
        guard !shutDown else { return reply(id, .failure(.invalidRequest("the server is shut down: only 'exit' is accepted now"))) }
        guard requests[id] == nil else {
            return reply(id, .failure(.invalidRequest("request id \(id) is already in use by a request in flight")))
        }
        switch method {
        case LSPMethod.shutdown:
            shutDown = true
            // Nothing runs after shutdown: stop the implements, then answer.
            let running = jobs.values.map(\.task)
            for task in running { task.cancel() }
            requests[id] = Task {
                await Self.wait(for: running, atMost: 3)
                self.finish(id, .success(.null))
            }
        case LSPMethod.codeAction:
            reply(id, Result { try LSPCoding.value(codeActions(try LSPCoding.decode(params, as: CodeActionParams.self))) }
                .mapError { .invalidParams("textDocument/codeAction: \($0)") })
        case LSPMethod.executeCommand:
            executeCommand(id, params)
        default:
            reply(id, .failure(ResponseError(code: ErrorCode.methodNotFound,
                                             message: "qcode lsp does not serve '\(method)' (docs/editors.md lists what it does)")))
        }
    }

    private func finish(_ id: RequestID, _ result: Result<JSONValue, ResponseError>) {
        requests[id] = nil
        reply(id, cancelledByClient.remove(id) != nil ? .failure(.cancelled) : result)
    }

    private func notification(_ method: String, _ params: JSONValue?) {
        guard initialized else { return }  // LSP: before initialize, notifications other than exit are dropped
        switch method {
        case LSPMethod.initialized:
            clientReady = true
            for m in held { editor.notify(LSPMethod.showMessage, try? LSPCoding.value(m)) }
            held = []
        case LSPMethod.cancelRequest:
            let id: RequestID?
            switch params?["id"] {
            case .int(let i)?: id = .int(i)
            case .string(let s)?: id = .string(s)
            default: id = nil
            }
            if let id, let task = requests[id] {
                cancelledByClient.insert(id)
                task.cancel()
            }
        case LSPMethod.workDoneProgressCancel:
            guard let token = params?["token"] else { return }
            for job in jobs.values where job.token == token { job.task.cancel() }
        case LSPMethod.didOpen:
            guard let p = try? LSPCoding.decode(params, as: DidOpenTextDocumentParams.self) else { return }
            documents[p.textDocument.uri] = Document(text: p.textDocument.text, version: p.textDocument.version)
            changed(p.textDocument.uri)
        case LSPMethod.didChange:
            guard let p = try? LSPCoding.decode(params, as: DidChangeTextDocumentParams.self),
                  var doc = documents[p.textDocument.uri] else { return }
            for change in p.contentChanges {
                if let range = change.range {
                    doc.text = TextEdit(range: range, newText: change.text).applied(to: doc.text)
                } else {
                    doc.text = change.text
                }
            }
            doc.version = p.textDocument.version ?? doc.version + 1
            documents[p.textDocument.uri] = doc
            changed(p.textDocument.uri)
        case LSPMethod.didClose:
            guard let p = try? LSPCoding.decode(params, as: DidCloseTextDocumentParams.self) else { return }
            documents[p.textDocument.uri] = nil
            changed(p.textDocument.uri)
        case LSPMethod.didChangeConfiguration:
            configure(params?["settings"])
        default:
            break  // notifications are never answered; unknown ones are ignored, as LSP says
        }
    }

    private func initialize(_ id: RequestID, _ params: JSONValue?) {
        guard !initialized else {
            return reply(id, .failure(.invalidRequest("the session is already initialized; send 'initialize' once")))
        }
        let p: LSPInitializeParams
        do { p = try LSPCoding.decode(params, as: LSPInitializeParams.self) } catch {
            return reply(id, .failure(.invalidParams("initialize: \(error)")))
        }
        initialized = true
        features.workDoneProgress = p.capabilities?.window?.workDoneProgress ?? false
        features.applyEdit = p.capabilities?.workspace?.applyEdit ?? false
        features.documentChanges = p.capabilities?.workspace?.workspaceEdit?.documentChanges ?? false
        configure(p.initializationOptions)
        if let pid = p.processId { watch(pid) }
        let result = LSPInitializeResult(capabilities: ServerCapabilities(),
                                         serverInfo: .init(name: "qcode", version: qcodeVersion))
        reply(id, Result { try LSPCoding.value(result) }.mapError { .internalError("\($0)") })
    }

    private func configure(_ value: JSONValue?) {
        do {
            settings = try EditorSettings.parse(value)
        } catch {
            return show(.error, "qcode: \(error); the other settings stay as they were")
        }
        // A bad config.toml or QCODE_ variable would fail the first implement: say so now.
        do { _ = try settings.resolve(environment: options.environment, file: options.configFile) } catch {
            show(.error, "qcode's configuration: \(error)")
        }
    }

    /// Tells the user something they must act on (held until the client is ready).
    private func show(_ type: MessageType, _ message: String) {
        let m = ShowMessageParams(type: type, message: message)
        if clientReady { editor.notify(LSPMethod.showMessage, try? LSPCoding.value(m)) } else { held.append(m) }
    }

    // MARK: - The editor's process

    /// LSP: "if the parent process is not alive then the server should exit".
    /// Looked at from a Dispatch timer, never from the cooperative pool.
    private func watch(_ pid: Int) {
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + options.watchInterval, repeating: options.watchInterval)
        timer.setEventHandler { [weak self] in
            guard let self, !Self.alive(Int32(truncatingIfNeeded: pid)) else { return }
            Task { await self.editorGone() }
        }
        timer.resume()
        watcher = timer
    }

    private func editorGone() {
        watcher?.cancel()
        serving?.cancel()
    }

    /// A process that exists and is not a zombie.
    static func alive(_ pid: Int32) -> Bool {
        guard pid > 0 else { return true }
        if kill(pid, 0) != 0 && errno == ESRCH { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first != "Z"
    }

    // MARK: - Documents

    private func changed(_ uri: String) {
        for (key, waiter) in changeWaiters where waiter.uri == uri {
            changeWaiters[key] = nil
            waiter.resume.resume()
        }
    }

    /// Returns when `uri` changes, or after `seconds`.
    private func nextChange(_ uri: String, atMost seconds: Double) async {
        let key = nextWaiter
        nextWaiter += 1
        let timeout = Task {
            try? await Task.sleep(for: .seconds(seconds))
            self.endWait(key)
        }
        await withCheckedContinuation { changeWaiters[key] = (uri, $0) }
        timeout.cancel()
    }

    private func endWait(_ key: Int) {
        changeWaiters.removeValue(forKey: key)?.resume.resume()
    }

    // MARK: - Code actions

    private func codeActions(_ p: CodeActionParams) -> [LSPCodeAction] {
        guard CodeActionKind.allowed(CodeActionKind.rewrite, by: p.context?.only), let doc = documents[p.textDocument.uri],
              let site = EditorStubs.stub(at: p.range.start, in: doc.text) else { return [] }
        let uri = p.textDocument.uri
        if jobs.values.contains(where: { $0.uri == uri && $0.function == site.qualifiedName }) {
            let title = "Cancel qcode (implementing \(site.qualifiedName))"
            let target: JSONValue = ["uri": .string(uri), "function": .string(site.qualifiedName)]
            return [LSPCodeAction(title: title, kind: CodeActionKind.rewrite,
                               command: Command(title: title, command: LSPCommand.cancel, arguments: [target]))]
        }
        let args = (try? LSPCoding.value(ImplementArguments(uri: uri, function: site.qualifiedName, version: doc.version))) ?? .null
        let title = "Implement with qcode"
        return [LSPCodeAction(title: title, kind: CodeActionKind.rewrite,
                           command: Command(title: title, command: LSPCommand.implement, arguments: [args]))]
    }

    // MARK: - Commands

    private func executeCommand(_ id: RequestID, _ params: JSONValue?) {
        let p: ExecuteCommandParams
        do { p = try LSPCoding.decode(params, as: ExecuteCommandParams.self) } catch {
            return reply(id, .failure(.invalidParams("workspace/executeCommand: \(error)")))
        }
        switch p.command {
        case LSPCommand.implement:
            guard let first = p.arguments?.first, let args = try? LSPCoding.decode(first, as: ImplementArguments.self) else {
                return reply(id, .failure(.invalidParams("qcode.implement takes one argument: {\"uri\": …, \"function\": …}")))
            }
            let key = nextJob
            nextJob += 1
            let task = Task { await self.implement(key, id, args, clientToken: p.workDoneToken) }
            jobs[key] = Job(request: id, uri: args.uri, function: args.function, token: p.workDoneToken, task: task)
            requests[id] = task
        case LSPCommand.cancel:
            let uri = p.arguments?.first?["uri"]?.stringValue
            let function = p.arguments?.first?["function"]?.stringValue
            let matching = jobs.values.filter { (uri == nil || $0.uri == uri) && (function == nil || $0.function == function) }
            for job in matching { job.task.cancel() }
            // Answered once the searches have stopped (the daemon said so), not merely been asked to.
            requests[id] = Task {
                await Self.wait(for: matching.map(\.task), atMost: 30)
                self.finish(id, .success(["cancelled": .int(matching.count)]))
            }
        default:
            reply(id, .failure(.invalidParams("unknown command '\(p.command)'; qcode's are \(LSPCommand.all.joined(separator: ", "))")))
        }
    }

    /// One "Implement with qcode", answered when it has ended one way or another.
    private func implement(_ key: Int, _ id: RequestID, _ args: ImplementArguments, clientToken: JSONValue?) async {
        var token = clientToken
        if token == nil, features.workDoneProgress {
            let made = JSONValue.string("qcode-implement-\(key)")
            if (try? await editor.request(LSPMethod.workDoneProgressCreate, ["token": made])) != nil { token = made }
            jobs[key]?.token = token
        }
        let progress = ProgressReporter(token: token, editor: editor, interval: options.progressInterval)
        let outcome = await implement(args, progress, key: key)
        jobs[key] = nil
        finish(id, .success(outcome))
    }

    /// The answer to `qcode.implement`: `applied`, and why not.
    private func implement(_ args: ImplementArguments, _ progress: ProgressReporter, key: Int) async -> JSONValue {
        let name = args.function
        func failed(_ type: MessageType, _ message: String, end: String) -> JSONValue {
            show(type, message)
            progress.end(end)
            return ["applied": false, "reason": .string(message)]
        }
        progress.begin("qcode: implementing \(name)", message: "reading the module")
        guard let doc = documents[args.uri] else {
            return failed(.error, "qcode: \(args.uri) is not open in the editor: open it, then implement \(name) again", end: "not open")
        }
        let path = URL(string: args.uri).flatMap { $0.isFileURL ? $0.path : nil }
        let task: CodeTask
        do { task = try StubTasks.load(source: doc.text, path: path, function: name) } catch {
            return failed(.error, "qcode: \(error)", end: "nothing to implement")
        }
        guard let stub = task.stub else { return failed(.error, "qcode: \(name) is not a stub", end: "nothing to implement") }
        let settings = self.settings
        let configuration: Configuration
        do { configuration = try settings.resolve(environment: options.environment, file: options.configFile) } catch {
            return failed(.error, "qcode's configuration: \(error)", end: "configuration error")
        }
        progress.state("connecting to the qcode daemon")
        let client: RPCClient
        do {
            client = try await link.connected(DaemonTarget(configuration: configuration, settings: settings.configuration))
        } catch is CancellationError {
            progress.end("cancelled")
            return ["applied": false, "cancelled": true]
        } catch {
            return failed(.error, "qcode cannot reach its daemon: \(error)", end: "no daemon")
        }
        if let mismatch = await link.takeMismatch() { show(.warning, "qcode: \(mismatch)") }
        progress.state("searching (\(settings.options.method)); the first search also loads the model")

        let daemonToken = "lsp-\(getpid())-\(key)"
        let budget = settings.options.search.budget.maxGeneratedTokens
        link.route(daemonToken) { progress.report($0, budget: budget) }
        defer { link.unroute(daemonToken) }
        let params = SolveParams(source: doc.text, file: path, function: name, options: settings.options,
                                 workDoneToken: .string(daemonToken))
        let result: SolveResult
        do {
            // A request made from a cancelled task would be cancelled before it was sent, and so never.
            try Task.checkCancellation()
            result = try await client.request(Method.solve, JSONValue.encoding(params)).decode(SolveResult.self)
        } catch let e as ResponseError where e.code == ErrorCode.requestCancelled || Task.isCancelled {
            progress.end("cancelled")
            return ["applied": false, "cancelled": true]
        } catch is CancellationError {
            progress.end("cancelled")
            return ["applied": false, "cancelled": true]
        } catch let e as ResponseError {
            let hint = e.code == ErrorCode.internalError ? " (`qcode doctor` checks every part qcode needs)" : ""
            return failed(.error, "qcode could not implement \(name): \(e.message)\(hint)", end: "failed")
        } catch is RPCClient.ClientError {
            return failed(.error, "qcode could not implement \(name): the qcode daemon went away before it answered (it crashed or "
                          + "was stopped): see \(configuration.logFile); implement again to start a new one", end: "daemon gone")
        } catch {
            return failed(.error, "qcode could not implement \(name): \(error)", end: "failed")
        }
        return await deliver(result, stub: stub, uri: args.uri, progress)
    }

    /// Puts a finished search's program into the buffer, or says why not and shows it.
    private func deliver(_ result: SolveResult, stub: StubContext, uri: String, _ progress: ProgressReporter) async -> JSONValue {
        let name = stub.function
        var answer: [String: JSONValue] = ["applied": false, "verified": .bool(result.verified), "passed": .int(result.passed),
                                           "total": .int(result.total)]
        func notApplied(_ why: String, _ end: String) -> JSONValue {
            show(.warning, "qcode: \(why)" + (result.function.map { "\n\n\($0)" } ?? ""))
            progress.end(end)
            answer["reason"] = .string(why)
            return .object(answer)
        }
        guard let program = result.program else {
            return notApplied("no program for \(name) within the budget (\(result.statistics.cost.generatedTokens) tokens); "
                              + "raise budget_tokens or try another method", "no program")
        }
        let tests = result.tests.map { " (\($0))" } ?? ""
        if result.verified && !result.solved {
            return notApplied("the best program for \(name) passes \(result.passed)/\(result.total) tests\(tests), so it was not "
                              + "applied; it was:", "not applied: passes \(result.passed)/\(result.total) tests")
        }
        guard features.applyEdit else { return notApplied("this editor cannot apply edits; the function qcode wrote:", "done") }
        var attempt = 0
        while true {
            guard let doc = documents[uri] else {
                return notApplied("\(uri) was closed before the search ended; the function qcode wrote:", "not applied: closed")
            }
            let edit: TextEdit
            do { edit = try EditorStubs.edit(stub: stub, program: program, current: doc.text) } catch {
                return notApplied("\(name) changed while qcode was searching (or the module no longer parses), so your edit stays "
                                  + "and qcode's was not applied; the function it wrote:", "not applied: the function changed")
            }
            let applied: Bool
            do { applied = try await applyEdit(uri, version: doc.version, edit, label: "qcode: implement \(name)") } catch {
                return notApplied("the editor did not apply the edit (\(error)); the function qcode wrote:", "not applied")
            }
            if applied { break }
            // The editor's text was newer than ours (its change is on the way): once more against it.
            attempt += 1
            if attempt == 2 || Task.isCancelled {
                return notApplied("the document changed while qcode was applying its edit, so it was not applied; the function it wrote:",
                                  "not applied: the document changed")
            }
            await nextChange(uri, atMost: 1)
        }
        answer["applied"] = true
        // Messages before the end, as everywhere: a client can take the end as "qcode has said all it will".
        if result.verified {
            if progress.token == nil { show(.info, "qcode implemented \(name): passes \(result.passed)/\(result.total) tests\(tests)") }
            progress.end("implemented \(name): passes \(result.passed)/\(result.total) tests\(tests)")
        } else {
            show(.warning, "qcode wrote \(name), but found no tests, so nothing ran it: the program is unverified. Add `>>>` examples "
                 + "to its docstring, or test_\(stub.module ?? "MODULE").py beside the module, and qcode will check what it writes")
            progress.end("implemented \(name), UNVERIFIED: no tests found")
        }
        return .object(answer)
    }

    /// Sends the edit, versioned when the client takes versioned edits (it then
    /// refuses it if its document is newer); true when the client applied it.
    private func applyEdit(_ uri: String, version: Int, _ edit: TextEdit, label: String) async throws -> Bool {
        let change = features.documentChanges
            ? WorkspaceEdit(documentChanges: [TextDocumentEdit(textDocument: .init(uri: uri, version: version), edits: [edit])])
            : WorkspaceEdit(changes: [uri: [edit]])
        let answer = try await editor.request(LSPMethod.applyEdit, LSPCoding.value(ApplyWorkspaceEditParams(label: label, edit: change)))
        return try LSPCoding.decode(answer, as: ApplyWorkspaceEditResult.self).applied
    }
}
