import ArgumentParser
import Foundation
import LSP
import RPC

struct LSPServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lsp",
        abstract: "Serve an editor: a Language Server (LSP 3.17) on stdin/stdout for Python files (docs/editors.md).",
        discussion: """
            On a function whose body is a stub, the code action "Implement with qcode" has the daemon (started \
            when none runs) write the body, with progress, cancellation and a versioned edit. Settings come \
            from the editor (initializationOptions, workspace/didChangeConfiguration): the solve options \
            `qcode solve` has flags for and the configuration keys `qcode config` lists.
            """)

    @Flag(help: .hidden) var stdio = false  // editors' generic clients pass it; stdio is the only transport

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)  // an editor that went away fails our writes with EPIPE instead of killing us mid-cleanup
        let server = LSPServer(connection: Connection(input: STDIN_FILENO, output: STDOUT_FILENO))
        let status = await server.run()
        throw ExitCode(status)
    }
}
