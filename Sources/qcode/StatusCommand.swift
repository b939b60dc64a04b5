import ArgumentParser
import Daemon
import Foundation
import RPC

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show whether the daemon runs, and what it has done.")

    @Option(help: "The daemon's socket.")
    var socket: String?

    @Flag(help: "Print the daemon's qcode/status result as JSON.")
    var json = false

    func run() async throws {
        let config = try DaemonOptions(socket: socket).config()
        guard let client = try await DaemonLauncher.connect(socket: config.socketPath, serveArguments: nil,
                                                            logFile: config["log_file"], clientName: "qcode status") else {
            print("no qcode daemon on \(config.socketPath) (commands start one; or run `qcode serve`)")
            throw ExitCode(3)
        }
        defer { client.close() }
        let value = try await daemonRequest(client, Method.status, [:])
        if json {
            print(String(decoding: try JSONCoding.encoder.encode(value), as: UTF8.self))
            return
        }
        let s = try value.decode(StatusResult.self)
        print("qcode daemon \(s.version), pid \(s.pid), on \(s.socket ?? config.socketPath)")
        print("uptime          \(Self.duration(s.uptimeSeconds))")
        print("requests        \(s.requestsServed) served, \(s.solvesCompleted) solves completed")
        print("now             \(s.connections) connections, \(s.solvesRunning) solves running, \(s.solvesWaiting) waiting")
        print("tokens          \(s.tokens.generatedTokens) generated, \(s.tokens.promptTokens) prompt (+\(s.tokens.cachedPromptTokens) cached) in \(s.tokens.llmCalls) LLM calls")
        print("llm             \(s.llm.kind.rawValue)\(s.llm.url.map { " \($0)" } ?? ""): \(s.llm.healthy ? "healthy" : s.llm.kind == .embedded ? "idle" : "NOT healthy") (\(s.llm.detail))")
        print(String(format: "caches          jail %d runs, %d hits (%.0f%%); LLM prompt cache %.0f%%",
                     s.caches.jailRuns, s.caches.jailCacheHits, s.caches.jailHitRate * 100, s.caches.llmPromptCacheShare * 100))
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s)
        return t >= 3600 ? "\(t / 3600) h \(t % 3600 / 60) min" : t >= 60 ? "\(t / 60) min \(t % 60) s" : "\(t) s"
    }
}

extension DaemonOptions {
    init(socket: String?) {
        self.init()
        self.socket = socket
    }
}
