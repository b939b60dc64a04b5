import Basics
import CodeDomain
import Foundation
import LSP
import Policy
import RPC
import Synchronization
import Testing
import TestSupport
@testable import Daemon

let uri = "file:///tmp/qcode-lsp-tests/mathy.py"
/// `double` is a stub with a doctest; `other` is finished; `Box.size` is a stub method.
let module = """
    import math


    def double(x):
        \"\"\"Twice x.

        >>> double(2)
        4
        \"\"\"
        ...


    def other():
        return 1


    class Box:
        def size(self):
            pass

    """
let implemented = module.replacingOccurrences(of: "    \"\"\"\n    ...\n", with: "    \"\"\"\n    return x * 2\n")

/// The first action offered at `line`, which must be "Implement with qcode".
func implementAction(_ editor: TestEditor, line: Int = 9) async throws -> Command {
    let actions = try await editor.codeActions(uri, line: line)
    let command = try #require(actions.first?.command)
    #expect(actions.count == 1 && actions[0].title == "Implement with qcode" && actions[0].kind == "refactor.rewrite")
    #expect(command.command == "qcode.implement")
    return command
}

@Suite struct CodeActionTests {
    @Test func offeredOnAStubAndNotOnAFinishedFunction() async throws {
        let editor = try TestEditor(model: NoModel())
        try await editor.initialize()
        editor.open(uri, module)
        for line in [3, 4, 9] {  // the def line, the docstring, the stub's `...`
            let command = try await implementAction(editor, line: line)
            let args = try LSPCoding.decode(try #require(command.arguments?.first), as: ImplementArguments.self)
            #expect(args == ImplementArguments(uri: uri, function: "double", version: 1))
        }
        #expect(try await editor.codeActions(uri, line: 13).isEmpty, "`other` has a body")
        #expect(try await editor.codeActions(uri, line: 0).isEmpty, "outside every function")
        let method = try await implementAction(editor, line: 18)
        #expect(method.arguments?.first?["function"] == "Box.size")
        // The client's kind filter is honoured: a prefix matches, another kind does not.
        #expect(try await editor.codeActions(uri, line: 9, only: ["refactor"]).count == 1)
        #expect(try await editor.codeActions(uri, line: 9, only: ["quickfix"]).isEmpty)
        // A document edited into a finished function no longer offers it.
        editor.type(uri, implemented)
        #expect(try await editor.codeActions(uri, line: 9).isEmpty)
        #expect(try await editor.quit() == 0)
    }
}

@Suite struct ImplementTests {
    @Test func progressBeginReportsEndThenAVersionedEditOfTheBodyOnly() async throws {
        let editor = try TestEditor(model: BodyModel())
        try await editor.initialize(["method": "greedy", "budget_tokens": 100])
        editor.open(uri, module)
        let command = try await implementAction(editor)
        let answer = try await editor.execute(command)
        #expect(answer["applied"] == true && answer["passed"] == 1 && answer["total"] == 1 && answer["verified"] == true, "\(answer)")
        #expect(editor.text(uri) == implemented)

        // The token was created before any progress used it, and the sequence is begin, report…, end.
        let methods = editor.methods
        let created = try #require(methods.firstIndex(of: LSPMethod.workDoneProgressCreate))
        #expect(created < (methods.firstIndex(of: LSPMethod.progress) ?? -1))
        let progress = editor.progress("qcode-implement-1")
        #expect(progress.first?.kind == .begin && progress.first?.title == "qcode: implementing double" && progress.first?.cancellable == true)
        #expect(progress.last?.kind == .end && progress.last?.message == "implemented double: passes 1/1 tests (the docstring of double)")
        #expect(progress.dropFirst().dropLast().allSatisfy { $0.kind == .report } && progress.count >= 4, "\(progress)")
        #expect(progress.contains { $0.message?.contains("1 program tried") == true && $0.percentage != nil }, "\(progress)")

        // One edit, for version 1 (the text the search started from), replacing the stub's line only.
        let edit = try #require(editor.edits.first?.edit.documentChanges?.first)
        #expect(editor.edits.count == 1 && edit.textDocument == VersionedTextDocumentIdentifier(uri: uri, version: 1))
        #expect(edit.edits == [TextEdit(range: .init(start: .init(line: 9, character: 0), end: .init(line: 10, character: 0)),
                                        newText: "    return x * 2\n")])
        #expect(editor.messages.isEmpty, "\(editor.messages)")
        #expect(try await editor.quit() == 0)
    }

    @Test func typingElsewhereMeanwhileKeepsTheUsersTextAndTheBodyStillGoesIn() async throws {
        let model = BodyModel(gated: true)
        let editor = try TestEditor(model: model)
        try await editor.initialize(["method": "greedy"])
        editor.open(uri, module)
        let command = try await implementAction(editor)
        let running = Task { try await editor.execute(command) }
        try await model.waitForCalls(1)
        let typed = module.replacingOccurrences(of: "import math\n", with: "import math\nimport os\n")
        editor.type(uri, typed)  // version 2
        model.release()
        let answer = try await running.value
        #expect(answer["applied"] == true, "\(answer)")
        #expect(editor.text(uri) == implemented.replacingOccurrences(of: "import math\n", with: "import math\nimport os\n"))
        #expect(editor.edits.first?.edit.documentChanges?.first?.textDocument.version == 2)
        #expect(try await editor.quit() == 0)
    }

    @Test func anEditOfTheFunctionItselfIsNotOverwrittenAndTheProgramIsShown() async throws {
        let model = BodyModel(gated: true)
        let editor = try TestEditor(model: model)
        try await editor.initialize(["method": "greedy"])
        editor.open(uri, module)
        let command = try await implementAction(editor)
        let running = Task { try await editor.execute(command) }
        try await model.waitForCalls(1)
        let mine = module.replacingOccurrences(of: "    ...\n", with: "    return x + x\n")
        editor.type(uri, mine)
        model.release()
        let answer = try await running.value
        #expect(answer["applied"] == false)
        #expect(editor.text(uri) == mine && editor.edits.isEmpty)
        let message = try #require(editor.messages.last)
        #expect(message.type == .warning && message.message.contains("double changed while qcode was searching"))
        #expect(message.message.hasSuffix("def double(x):\n    \"\"\"Twice x.\n\n    >>> double(2)\n    4\n    \"\"\"\n    return x * 2\n"),
                "\(message.message)")
        #expect(editor.progress().last?.message == "not applied: the function changed")
        #expect(try await editor.quit() == 0)
    }

    @Test func noTestsMeansAnUnverifiedProgramAndTheUserIsTold() async throws {
        let editor = try TestEditor(model: BodyModel())
        try await editor.initialize(["method": "greedy"])
        let bare = module.replacingOccurrences(of: "\n\n    >>> double(2)\n    4\n    ", with: "")
        editor.open(uri, bare)
        let answer = try await editor.execute(try await implementAction(editor, line: 5))
        #expect(answer["applied"] == true && answer["verified"] == false)
        #expect(editor.text(uri)?.contains("    \"\"\"Twice x.\"\"\"\n    return x * 2\n") == true)
        #expect(editor.messages.contains { $0.type == .warning && $0.message.contains("no tests") && $0.message.contains("unverified") },
                "\(editor.messages)")
        #expect(try await editor.quit() == 0)
    }

    @Test func aProgramThatFailsItsTestsIsShownNotApplied() async throws {
        let editor = try TestEditor(model: BodyModel(body: "    return x + 1\n"))
        try await editor.initialize(["method": "greedy"])
        editor.open(uri, module)
        let answer = try await editor.execute(try await implementAction(editor))
        #expect(answer["applied"] == false && answer["passed"] == 0 && answer["total"] == 1)
        #expect(editor.text(uri) == module && editor.edits.isEmpty)
        #expect(editor.messages.contains { $0.message.contains("passes 0/1 tests") && $0.message.contains("return x + 1") }, "\(editor.messages)")
        #expect(try await editor.quit() == 0)
    }
}

@Suite struct CancelTests {
    /// Starts an implement the model never finishes; returns its request id once the daemon's model call is waiting.
    func started(_ editor: TestEditor, _ model: BlockingModel) async throws -> (RequestID, Task<JSONValue, any Error>) {
        try await editor.initialize(["method": "greedy"])
        editor.open(uri, module)
        let command = try await implementAction(editor)
        let id = editor.rpc.makeID()
        let running = Task { try await editor.execute(command, id: id) }
        try await model.waitForCalls(1)
        return (id, running)
    }

    /// The daemon's search stopped: its model call saw the cancellation, nothing runs, the progress ended.
    func expectStopped(_ editor: TestEditor, _ model: BlockingModel) async throws {
        try await model.waitForCancellations(1)
        let status = try await editor.daemonStatus()
        #expect(status.solvesRunning == 0 && status.solvesWaiting == 0)
        #expect(editor.progress().last == WorkDoneProgress(kind: .end, message: "cancelled"))
        #expect(editor.edits.isEmpty && editor.text(uri) == module)
    }

    @Test func cancelRequestIsAnsweredRequestCancelled() async throws {
        let model = BlockingModel()
        let editor = try TestEditor(model: model)
        let (id, running) = try await started(editor, model)
        editor.rpc.notify(LSPMethod.cancelRequest, ["id": id.json])
        let e = await #expect(throws: ResponseError.self) { try await running.value }
        #expect(e?.code == ErrorCode.requestCancelled)
        try await expectStopped(editor, model)
        #expect(try await editor.quit() == 0)
    }

    @Test func theProgressCancelButtonStopsTheSearch() async throws {
        let model = BlockingModel()
        let editor = try TestEditor(model: model)
        let (_, running) = try await started(editor, model)
        try await editor.waitForProgress(.begin)
        editor.rpc.notify(LSPMethod.workDoneProgressCancel, ["token": "qcode-implement-1"])
        let answer = try await running.value
        #expect(answer["cancelled"] == true && answer["applied"] == false)
        try await expectStopped(editor, model)
        #expect(try await editor.quit() == 0)
    }

    @Test func theCancelCommandAnswersOnceTheSearchStopped() async throws {
        let model = BlockingModel()
        let editor = try TestEditor(model: model)
        let (_, running) = try await started(editor, model)
        // While it runs, the action on that function is to cancel it.
        let actions = try await editor.codeActions(uri, line: 9)
        #expect(actions.map(\.title) == ["Cancel qcode (implementing double)"])
        let result = try await editor.execute(try #require(actions.first?.command))
        #expect(result["cancelled"] == 1)
        // Answered after the implement itself ended: the daemon's search had stopped.
        #expect(model.cancelled.load(ordering: .sequentiallyConsistent) == 1)
        #expect(try await running.value["cancelled"] == true)
        try await expectStopped(editor, model)
        #expect(try await editor.quit() == 0)
    }

    @Test func exitingMidSearchLeavesNoDaemonClientOrSearch() async throws {
        let model = BlockingModel()
        let editor = try TestEditor(model: model)
        _ = try await started(editor, model)
        #expect(try await editor.daemonStatus().connections == 2)  // the LSP server's and this status query's
        #expect(try await editor.quit(shutdown: false) == 1)  // exit without shutdown: status 1, as LSP says
        try await model.waitForCancellations(1)
        try await eventually("the LSP server's daemon connection to close") { try await editor.daemonStatus().connections == 1 }
        #expect(try await editor.daemonStatus().solvesRunning == 0)
    }

    @Test func shutdownStopsRunningSearchesBeforeItAnswers() async throws {
        let model = BlockingModel()
        let editor = try TestEditor(model: model)
        _ = try await started(editor, model)
        _ = try await editor.rpc.request(LSPMethod.shutdown)
        #expect(model.cancelled.load(ordering: .sequentiallyConsistent) == 1)
        #expect(try await editor.quit(shutdown: false) == 0)
    }
}

@Suite struct FailureMessageTests {
    @Test func aDaemonThatCannotStartIsSaidSoWithWhatToDo() async throws {
        let editor = try TestEditor(model: NoModel(), connector: { _ in
            throw DaemonLauncher.LaunchError(description: "the qcode daemon did not open /x.sock within 30 s: see /x.log")
        })
        try await editor.initialize()
        editor.open(uri, module)
        let answer = try await editor.execute(try await implementAction(editor))
        #expect(answer["applied"] == false)
        let message = try #require(editor.messages.last)
        #expect(message.type == .error && message.message == "qcode cannot reach its daemon: the qcode daemon did not open /x.sock within 30 s: see /x.log")
        #expect(editor.progress().last?.message == "no daemon")
        #expect(try await editor.quit() == 0)
    }

    struct MissingModel: LanguageModel {
        func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
            throw PolicyError.modelMissing("/cache/qwen.gguf", fix: "QCODE_MODEL=0.5b scripts/bootstrap")
        }
    }

    @Test func aMissingModelNamesTheCommandThatFetchesIt() async throws {
        let editor = try TestEditor(model: MissingModel())
        try await editor.initialize(["method": "greedy"])
        editor.open(uri, module)
        _ = try await editor.execute(try await implementAction(editor))
        let message = try #require(editor.messages.last)
        #expect(message.type == .error && message.message.contains("run `QCODE_MODEL=0.5b scripts/bootstrap` to fetch it")
                && message.message.contains("`qcode doctor`"), "\(message.message)")
    }

    @Test func aModuleThatDoesNotParseIsNamed() async throws {
        let editor = try TestEditor(model: NoModel())
        try await editor.initialize()
        editor.open(uri, module)
        let command = try await implementAction(editor)
        editor.type(uri, module + "def broken(:\n")
        _ = try await editor.execute(command)
        #expect(editor.messages.last?.message.contains("does not parse") == true, "\(editor.messages)")
        #expect(try await editor.quit() == 0)
    }
}

@Suite struct SettingsTests {
    @Test func aBadSettingIsNamedAndTheServerKeepsServing() async throws {
        let editor = try TestEditor(model: BodyModel())
        try await editor.initialize(["method": "greedy", "k": 99])
        try await editor.waitForMessage(containing: "setting 'k': must be between 1 and 64")
        for (settings, words) in [(["qcode": ["budget_tokns": 5]], "unknown setting 'budget_tokns'; qcode's settings are: method, value, k"),
                                  (["endpoint": "not a url"], "setting 'endpoint' must be a URL such as http://127.0.0.1:8080"),
                                  (["samples": "many"], "settings: parameter 'samples' has the wrong type"),
                                  (["model": "7b"], "setting 'model' must be one of \"0.5b\", \"1.5b\"")] as [(JSONValue, String)] {
            editor.rpc.notify(LSPMethod.didChangeConfiguration, ["settings": settings])
            try await editor.waitForMessage(containing: words)
        }
        #expect(editor.messages.allSatisfy { $0.type == .error && $0.message.hasSuffix("the other settings stay as they were") })
        editor.open(uri, module)
        #expect(try await implementAction(editor).command == "qcode.implement")
        #expect(try await editor.quit() == 0)
    }

    @Test func aBrokenConfigFileIsSaidAtOnce() async throws {
        let dir = try tempDirectory("lsp-config")
        let file = dir.appendingPathComponent("config.toml")
        try "slots = 4\nslotz = 8\n".write(to: file, atomically: true, encoding: .utf8)
        let editor = try TestEditor(model: NoModel(), configFile: file)
        try await editor.initialize()
        try await editor.waitForMessage(containing: "qcode's configuration: \(file.path): unknown key 'slotz'")
        #expect(try await editor.quit() == 0)
    }

    @Test func settingsReachTheSearchAndTheDaemonLaunch() async throws {
        let editor = try TestEditor(model: BodyModel())
        try await editor.initialize(["method": "greedy"])
        editor.rpc.notify(LSPMethod.didChangeConfiguration,
                          ["settings": ["qcode": ["method": "best-of-n", "samples": 2, "budget_tokens": 40, "endpoint": "http://127.0.0.1:9",
                                                  "api": "llama"]]])
        editor.open(uri, module)
        _ = try await editor.execute(try await implementAction(editor))
        #expect(editor.progress().contains { $0.message == "searching (best-of-n); the first search also loads the model" })
        let target = try #require(editor.targets.first)
        #expect(target.settings == [.endpoint: "http://127.0.0.1:9", .api: "llama"])
        #expect(target.configuration.endpoint == "http://127.0.0.1:9" && target.configuration.api == .llama)
        #expect(DaemonLauncher.serveArguments(target.settings) == ["--api", "llama", "--endpoint", "http://127.0.0.1:9"])
        #expect(try await editor.quit() == 0)
    }
}

/// docs/editors.md is what users copy from: its settings must be settings qcode
/// takes, its table must list every option the Neovim plugin has, and the
/// messages it quotes must be the ones qcode sends.
@Suite struct EditorDocsTests {
    let page: String
    init() throws { page = try String(contentsOf: repoRoot.appendingPathComponent("docs/editors.md"), encoding: .utf8) }

    /// Runs of whitespace as one space: the page wraps its quotes.
    static func flat(_ s: String) -> String {
        s.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
    }

    @Test func everySettingsExampleIsValid() throws {
        var examples: [JSONValue] = []
        for block in page.components(separatedBy: "```json\n").dropFirst() {
            let json = try #require(block.components(separatedBy: "\n```").first)
            let value = try #require(try? JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)), "not JSON: \(json)")
            examples.append(value["glspc.server.initializationOptions"] ?? value)
        }
        // Helix's inline table, `config = { method = "qstar", budget_tokens = 1500 }`, as JSON.
        let server = try #require(page.components(separatedBy: "[language-server.qcode]").dropFirst().first)
        let helix = try #require(server.components(separatedBy: "\nconfig = ").dropFirst().first?.components(separatedBy: "\n").first)
        let helixJSON = helix.replacingOccurrences(of: #"(\w+) = "#, with: "\"$1\": ", options: .regularExpression)
        examples.append(try #require(try? JSONDecoder().decode(JSONValue.self, from: Data(helixJSON.utf8)), "not JSON: \(helixJSON)"))
        #expect(examples.count == 3, "the examples found: \(examples)")
        for example in examples {
            guard case .object(let keys) = example, !keys.isEmpty else { Issue.record("not a settings object: \(example)"); continue }
            #expect(throws: Never.self, "\(example)") { try EditorSettings.parse(example) }
        }
    }

    @Test func thePluginOptionsTableListsEveryOption() throws {
        let plugin = try String(contentsOf: repoRoot.appendingPathComponent("editors/nvim/lua/qcode/init.lua"), encoding: .utf8)
        let defaults = try #require(plugin.components(separatedBy: "M.defaults = {\n").dropFirst().first?.components(separatedBy: "\n}\n").first)
        let options = defaults.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("  "), !line.hasPrefix("   "), let eq = line.range(of: " = ") else { return nil }
            return String(line[line.index(line.startIndex, offsetBy: 2)..<eq.lowerBound])
        }
        #expect(options.count >= 6, "\(options)")
        for option in options {
            let described = page.contains("| `\(option)` |")
            #expect(described, "docs/editors.md does not describe the plugin option '\(option)'")
        }
    }

    @Test func theQuotedMessagesAreQcodes() throws {
        let page = Self.flat(page)
        let missing = PolicyError.modelMissing("M", fix: "QCODE_MODEL=1.5b scripts/bootstrap").description
        let fix = try #require(missing.components(separatedBy: "M not found").last)
        let documented = page.contains("not found" + fix + " (`qcode doctor` checks every part qcode needs)")
        #expect(documented, "docs/editors.md does not quote the missing model's message: \(missing)")
        // The rest as qcode's sources and the plugin write them.
        var sources = ""
        for file in ["Sources/LSP/Server.swift", "Sources/LSP/DaemonLink.swift", "Sources/Daemon/Launcher.swift",
                     "editors/nvim/lua/qcode/init.lua"] {
            sources += try String(contentsOf: repoRoot.appendingPathComponent(file), encoding: .utf8)
        }
        for quote in ["Implement with qcode", "Cancel qcode (implementing ", "qcode cannot reach its daemon: ",
                      "run `qcode serve` in a terminal to watch it start, ", "or run `qcode doctor`",
                      "the first search also loads the model", "connecting to the qcode daemon", ", UNVERIFIED: no tests found",
                      "no function stub under the cursor", "is not running for this buffer", " (:QcodeCancel stops it)",
                      "keeps the LLM it started with"] {
            let documented = page.contains(quote), said = sources.contains(quote)
            #expect(documented, "docs/editors.md does not say: \(quote)")
            #expect(said, "qcode no longer says: \(quote) (docs/editors.md quotes it)")
        }
    }
}
