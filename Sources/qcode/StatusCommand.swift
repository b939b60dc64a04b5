import ArgumentParser
import Basics
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
        let config = try DaemonOptions(socket: socket).configuration()
        guard let client = try await DaemonLauncher.connect(socket: config.socket, serveArguments: nil,
                                                            logFile: config.logFile, clientName: "qcode status") else {
            print("no qcode daemon on \(config.socket) (commands start one; or run `qcode serve`); LLM when started: \(config.llmDescription)")
            throw ExitCode(3)
        }
        defer { client.close() }
        let value = try await daemonRequest(client, Method.status, [:])
        if json {
            print(try JSONCoding.string(value))
            return
        }
        let s = try value.decode(StatusResult.self)
        print("qcode daemon \(s.version), pid \(s.pid), on \(s.socket ?? config.socket)")
        print("uptime          \(Self.duration(s.uptimeSeconds))")
        print("requests        \(s.requestsServed) served, \(s.solvesCompleted) solves completed")
        print("now             \(s.connections) connections, \(s.solvesRunning) solves running, \(s.solvesWaiting) waiting")
        print("tokens          \(s.tokens.generatedTokens) generated, \(s.tokens.promptTokens) prompt (+\(s.tokens.cachedPromptTokens) cached) in \(s.tokens.llmCalls) LLM calls")
        print("model           \(s.llm.model)")
        print("llm             \(s.llm.kind.rawValue)\(s.llm.url.map { " \($0)" } ?? ""): \(s.llm.healthy ? "healthy" : s.llm.kind == .embedded ? "idle" : "NOT healthy") (\(s.llm.detail))")
        if let e = s.llm.lastError { print("last LLM error  \(e)") }
        print(String(format: "caches          jail %d runs, %d hits (%.0f%%); LLM prompt cache %.0f%%",
                     s.caches.jailRuns, s.caches.jailCacheHits, s.caches.jailHitRate * 100, s.caches.llmPromptCacheShare * 100))
        if let pool = s.caches.jailPool {
            print("jail pool       \(pool); \(s.caches.jailWarmRuns ?? 0) of \(s.caches.jailRuns) runs warm")
        }
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
