import Foundation
import RPC

/// How command-line clients reach the daemon: connect, and when nobody
/// answers start `qcode serve` in the background (as bazel and gradle do) and
/// wait for its socket.
public enum DaemonLauncher {
    public struct LaunchError: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// A connected, initialized client; nil when no daemon runs and `serveArguments` is nil.
    /// - Parameter otherwise: what else the user can do when no daemon starts, for the error.
    public static func connect(socket: String, serveArguments: [String]?, logFile: String,
                               clientName: String, startTimeout: Double = 30,
                               otherwise: String = "or pass --no-daemon") async throws -> RPCClient? {
        if let client = try? RPCClient(socketPath: socket) {
            try await initialize(client, clientName)
            return client
        }
        guard let serveArguments else { return nil }
        try start(socket: socket, arguments: serveArguments, logFile: logFile, otherwise: otherwise)
        let deadline = Date().addingTimeInterval(startTimeout)
        while Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
            if let client = try? RPCClient(socketPath: socket) {
                try await initialize(client, clientName)
                return client
            }
        }
        throw LaunchError(description: "the qcode daemon did not open \(socket) within \(Int(startTimeout)) s: see \(logFile), run `qcode serve` in a terminal to watch it start, \(otherwise)")
    }

    /// The `qcode serve` flags that give a daemon these settings. `socket` and
    /// `log_file` are the launcher's own (where it connects, where the daemon's
    /// output goes), so they are not among them.
    public static func serveArguments(_ settings: [ConfigKey: String]) -> [String] {
        settings.filter { $0.key != .socket && $0.key != .logFile }
            .sorted { $0.key.rawValue < $1.key.rawValue }.flatMap { [$0.key.flag, $0.value] }
    }

    /// True when a daemon answers on `socket`.
    public static func isRunning(socket: String) -> Bool {
        guard let fd = try? UnixSocket.connect(socket) else { return false }
        close(fd)
        return true
    }

    static func initialize(_ client: RPCClient, _ name: String) async throws {
        _ = try await client.request(Method.initialize, .object([
            "process_id": .int(Int(getpid())), "client_info": .object(["name": .string(name), "version": .string(qcodeVersion)]),
        ]))
    }

    /// Starts `qcode serve` detached: its own session (so the terminal's
    /// Ctrl-C does not reach it), stdin from /dev/null, output to the log.
    static func start(socket: String, arguments: [String], logFile: String, otherwise: String) throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let log = URL(fileURLWithPath: logFile)
        try? FileManager.default.createDirectory(at: log.deletingLastPathComponent(), withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: logFile) { _ = FileManager.default.createFile(atPath: logFile, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: logFile) else {
            throw LaunchError(description: "cannot write the daemon log \(logFile): check the permissions of its folder")
        }
        handle.seekToEndOfFile()
        let p = Process()
        let setsid = "/usr/bin/setsid"
        if FileManager.default.isExecutableFile(atPath: setsid) {
            p.executableURL = URL(fileURLWithPath: setsid)
            p.arguments = [exe, "serve", "--socket", socket] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = ["serve", "--socket", socket] + arguments
        }
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = handle
        p.standardError = handle
        do { try p.run() } catch {
            throw LaunchError(description: "cannot start `qcode serve`: \(error.localizedDescription); run `qcode doctor`, \(otherwise)")
        }
    }
}

import Logging

public enum DaemonLog {
    /// Timestamped lines on stderr (the log file when started in the background).
    public static func bootstrap() {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .info
            return h
        }
    }
}
