import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the bootstrap leaves its artifacts (`~/.cache/qcode`, or `$QCODE_CACHE`).
public enum QCodeCache {
    public static var root: URL {
        if let custom = ProcessInfo.processInfo.environment["QCODE_CACHE"], !custom.isEmpty {
            return URL(fileURLWithPath: custom)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/qcode")
    }
    public static var serverBinary: URL { root.appendingPathComponent("bin/llama-server") }

    /// The models the bootstrap knows how to assemble.
    public static let models: [String: String] = [
        "0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    ]

    /// `$QCODE_MODEL_PATH`, else the file for `$QCODE_MODEL` (0.5b by default).
    public static func modelPath(choice: String? = nil) -> URL {
        let env = ProcessInfo.processInfo.environment
        if let path = env["QCODE_MODEL_PATH"], !path.isEmpty { return URL(fileURLWithPath: path) }
        let key = choice ?? env["QCODE_MODEL"] ?? "0.5b"
        return root.appendingPathComponent("models/\(models[key] ?? key)")
    }
}

public struct ServerSettings: Sendable, Hashable {
    public var binary: URL
    public var model: URL
    /// Two threads fit this 2-core machine; more only adds contention.
    public var threads: Int
    /// Parallel sequences: the ceiling on `n` per request.
    public var slots: Int
    public var contextTokens: Int
    public var startupTimeout: Double
    /// `qcode-jail`, whose `--tied-to-parent` mode kills the server when qcode
    /// dies, even by SIGKILL. nil: spawn the server directly.
    public var parentTie: URL?

    public init(binary: URL = QCodeCache.serverBinary, model: URL = QCodeCache.modelPath(),
                threads: Int = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 4)),
                slots: Int = 8, contextTokens: Int = 16384, startupTimeout: Double = 60, parentTie: URL? = nil) {
        self.parentTie = parentTie
        self.binary = binary
        self.model = model
        self.threads = threads
        self.slots = slots
        self.contextTokens = contextTokens
        self.startupTimeout = startupTimeout
    }
}

/// The llama-server qcode runs itself when no endpoint is configured: started
/// on a free loopback port, restarted if it dies, stopped with its owner.
public actor EmbeddedServer {
    public let settings: ServerSettings
    private var process: Process?
    private var port: Int = 0
    public private(set) var restarts = 0
    private var starting: Task<URL, Error>?

    public init(settings: ServerSettings = ServerSettings()) {
        self.settings = settings
    }

    public var logFile: URL { QCodeCache.root.appendingPathComponent("logs/llama-server.log") }

    /// The server's base URL, starting (or restarting) it when it is not running.
    public func ensureRunning() async throws -> URL {
        // A start in progress first: its process already runs but may still be loading (503).
        if let starting { return try await starting.value }
        if let process, process.isRunning { return baseURL }
        if process != nil { restarts += 1 }
        let task = Task { try await self.start() }
        starting = task
        defer { starting = nil }
        return try await task.value
    }

    public var isRunning: Bool { process?.isRunning ?? false }
    public var pid: Int32? { process.map { $0.processIdentifier } }
    private var baseURL: URL { URL(string: "http://127.0.0.1:\(port)")! }

    private func start() async throws -> URL {
        let fm = FileManager.default
        guard fm.isExecutableFile(atPath: settings.binary.path) else {
            throw PolicyError.serverBinaryMissing(settings.binary.path)
        }
        guard fm.fileExists(atPath: settings.model.path) else { throw PolicyError.modelMissing(settings.model.path) }
        port = try Self.freeLoopbackPort()
        try fm.createDirectory(at: logFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        _ = fm.createFile(atPath: logFile.path, contents: nil)
        let log = try FileHandle(forWritingTo: logFile)

        let p = Process()
        let arguments = [
            "-m", settings.model.path, "--host", "127.0.0.1", "--port", String(port),
            "-t", String(settings.threads), "-tb", String(settings.threads),
            "-c", String(settings.contextTokens), "-np", String(settings.slots), "--kv-unified",
        ]
        if let tie = settings.parentTie {
            p.executableURL = tie
            p.arguments = ["--tied-to-parent", "--", settings.binary.path] + arguments
        } else {
            p.executableURL = settings.binary
            p.arguments = arguments
        }
        p.standardOutput = log
        p.standardError = log
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p

        let client = HTTPLanguageModel(baseURL: baseURL)
        let deadline = ContinuousClock.now + .seconds(settings.startupTimeout)
        while ContinuousClock.now < deadline {
            if Task.isCancelled { stop(); throw CancellationError() }
            if !p.isRunning {
                let tail = (try? String(contentsOf: logFile, encoding: .utf8))?.split(separator: "\n").suffix(3).joined(separator: " | ") ?? ""
                process = nil
                throw PolicyError.serverFailedToStart("exited with status \(p.terminationStatus): \(tail) (log: \(logFile.path))")
            }
            if await client.health(timeout: 1) { return baseURL }
            try? await Task.sleep(for: .milliseconds(100))
        }
        stop()
        throw PolicyError.serverFailedToStart("no answer on /health within \(Int(settings.startupTimeout)) s (log: \(logFile.path))")
    }

    /// SIGTERM, then SIGKILL if it lingers: an orphaned llama-server would hold ~1 GB.
    public func stop() {
        guard let p = process else { return }
        process = nil
        guard p.isRunning else { return }
        p.terminate()
        let pid = p.processIdentifier
        for _ in 0..<30 where p.isRunning { usleep(100_000) }
        if p.isRunning { kill(pid, SIGKILL) }
        // Polled rather than waitUntilExit(), which needs a run loop an actor does not have.
        for _ in 0..<50 where p.isRunning { usleep(100_000) }
    }

    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PolicyError.serverFailedToStart("socket(): errno \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard bound == 0 else { throw PolicyError.serverFailedToStart("bind(): errno \(errno)") }
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard named == 0 else { throw PolicyError.serverFailedToStart("getsockname(): errno \(errno)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// A language model backed by the embedded server: each call makes sure the
/// server is up, so a crashed server is restarted on the next request.
public struct EmbeddedLanguageModel: LanguageModel {
    public let server: EmbeddedServer
    public let options: EndpointOptions
    public init(server: EmbeddedServer, options: EndpointOptions = EndpointOptions()) {
        self.server = server
        self.options = options
    }

    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        let url = try await server.ensureRunning()
        return try await HTTPLanguageModel(baseURL: url, options: options).complete(request)
    }
}
