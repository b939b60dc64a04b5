import ArgumentParser
import Daemon
import Foundation
import RPC

struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop the daemon: cancel its work, stop its llama-server, remove its socket.")

    @Option(help: "The daemon's socket.")
    var socket: String?

    func run() async throws {
        let config = try DaemonOptions(socket: socket).configuration()
        guard let client = try await DaemonLauncher.connect(socket: config.socket, serveArguments: nil,
                                                            logFile: config.logFile, clientName: "qcode stop") else {
            print("no qcode daemon on \(config.socket)")
            return
        }
        let pid = (try? await client.request(Method.status, [:]))?["pid"]?.intValue
        _ = try await daemonRequest(client, Method.stop, [:])
        client.close()
        let deadline = Date().addingTimeInterval(15)
        while FileManager.default.fileExists(atPath: config.socket) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        if let pid {
            while kill(pid_t(pid), 0) == 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        }
        guard !FileManager.default.fileExists(atPath: config.socket) else {
            throw UserError("the daemon did not stop within 15 s; see \(config.logFile) (kill \(pid.map(String.init) ?? "its pid") as a last resort)")
        }
        print("stopped the qcode daemon\(pid.map { " (pid \($0))" } ?? "")")
    }
}
