import Foundation
import LSP
import RPC
import Testing
import TestSupport

/// The built `qcode lsp` as an editor starts it: LSP frames on its stdin and stdout.
struct StdioServer {
    let process = Process()
    let rpc: RPCClient
    let incoming: AsyncStream<RPCClient.Incoming>

    init() throws {
        process.executableURL = buildProducts.appendingPathComponent("qcode")
        process.arguments = ["lsp", "--stdio"]
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("QCODE_") }
        env["XDG_CONFIG_HOME"] = try tempDirectory("lsp-config").path
        env["XDG_RUNTIME_DIR"] = try tempDirectory("lsp-run").path
        process.environment = env
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Our ends: dup'd, so the pipes' own handles may close without closing them.
        let connection = Connection(input: dup(stdout.fileHandleForReading.fileDescriptor),
                                    output: dup(stdin.fileHandleForWriting.fileDescriptor))
        try stdin.fileHandleForWriting.close()
        try stdout.fileHandleForReading.close()
        (rpc, incoming) = RPCClient.peer(connection)
    }

    func exitStatus() async throws -> Int32 {
        try await eventually("qcode lsp to exit") { !process.isRunning }
        return process.terminationStatus
    }

    func initialize(processId: Int32 = getpid()) async throws -> JSONValue {
        try await rpc.request(LSPMethod.initialize, ["processId": .int(Int(processId)), "capabilities": [:]])
    }
}

@Suite(.serialized) struct StdioTests {
    @Test func framesInAnyChunkingAndTheExitStatusAfterShutdown() async throws {
        let server = try StdioServer()
        let body = Data(#"{"jsonrpc":"2.0","id":"raw-1","method":"initialize","params":{"processId":null,"capabilities":{}}}"#.utf8)
        let frame = FrameParser.frame(body)
        // One byte, the rest of the header, then the body: the server must reassemble it.
        server.rpc.connection.sendRaw(frame.prefix(1))
        server.rpc.connection.sendRaw(frame.dropFirst().prefix(frame.count - body.count - 1))
        server.rpc.connection.sendRaw(frame.suffix(body.count))
        // Initialized by that frame: a request is served (before it, it would get -32002).
        let params: JSONValue = ["textDocument": ["uri": "file:///nowhere.py"],
                                 "range": ["start": ["line": 0, "character": 0], "end": ["line": 0, "character": 0]]]
        #expect(try await server.rpc.request(LSPMethod.codeAction, params) == [])
        // A body that is not JSON is answered (id null) and the session goes on.
        server.rpc.connection.sendRaw(FrameParser.frame(Data("nope!".utf8)))
        let unknown = await #expect(throws: ResponseError.self) { try await server.rpc.request("textDocument/hover", [:]) }
        #expect(unknown?.code == ErrorCode.methodNotFound)
        let again = await #expect(throws: ResponseError.self) { try await server.initialize() }
        #expect(again?.code == ErrorCode.invalidRequest)
        _ = try await server.rpc.request(LSPMethod.shutdown)
        let after = await #expect(throws: ResponseError.self) { try await server.rpc.request(LSPMethod.codeAction, params) }
        #expect(after?.code == ErrorCode.invalidRequest)
        server.rpc.notify(LSPMethod.exit)
        #expect(try await server.exitStatus() == 0)
    }

    @Test func theCapabilitiesSayWhatItServes() async throws {
        let server = try StdioServer()
        let result = try await server.initialize()
        #expect(result["capabilities"] == [
            "textDocumentSync": ["openClose": true, "change": 1],
            "codeActionProvider": ["codeActionKinds": ["refactor.rewrite"]],
            "executeCommandProvider": ["commands": ["qcode.implement", "qcode.cancel"]],
        ])
        #expect(result["serverInfo"]?["name"] == "qcode")
        server.rpc.notify(LSPMethod.exit)
        #expect(try await server.exitStatus() == 1, "exit without shutdown")
    }

    @Test func itExitsWhenTheEditorProcessDies() async throws {
        let editor = Process()
        editor.executableURL = URL(fileURLWithPath: "/bin/sleep")
        editor.arguments = ["600"]
        try editor.run()
        let server = try StdioServer()
        _ = try await server.initialize(processId: editor.processIdentifier)
        kill(editor.processIdentifier, SIGKILL)
        editor.waitUntilExit()
        #expect(try await server.exitStatus() == 1)
    }

    @Test func itExitsAtTheEndOfItsInput() async throws {
        let server = try StdioServer()
        _ = try await server.initialize()
        server.rpc.close()
        #expect(try await server.exitStatus() == 1)
    }
}
