import Basics
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the bootstrap leaves its artifacts (`~/.cache/qcode`, or `$QCODE_CACHE`,
/// which `scripts/bootstrap` reads too, so it stays an environment variable).
public enum QCodeCache {
    public static var root: URL {
        if let custom = ProcessInfo.processInfo.environment["QCODE_CACHE"], !custom.isEmpty {
            return URL(fileURLWithPath: custom)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/qcode")
    }
    public static var serverBinary: URL { root.appendingPathComponent("bin/llama-server") }
    public static var logs: URL { root.appendingPathComponent("logs") }
}

/// The models `scripts/bootstrap` knows how to assemble from PyPI.
public enum EmbeddedModel: String, Sendable, CaseIterable, Codable {
    case small = "0.5b"
    case large = "1.5b"

    public var fileName: String {
        switch self {
        case .small: return "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
        case .large: return "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
        }
    }

    public var displayName: String {
        switch self {
        case .small: return "Qwen2.5-Coder-0.5B-Instruct Q4_K_M"
        case .large: return "Qwen2.5-Coder-1.5B-Instruct Q4_K_M"
        }
    }

    public var defaultPath: URL { QCodeCache.root.appendingPathComponent("models/\(fileName)") }

    /// The command that fetches this model.
    public var bootstrapCommand: String { "QCODE_MODEL=\(rawValue) scripts/bootstrap" }
}

public struct ServerSettings: Sendable, Hashable {
    public var binary: URL
    public var model: URL
    /// The bootstrap command that fetches `model`, for the error when it is missing.
    public var fetchHint: String
    /// Two threads fit this 2-core machine; more only adds contention.
    public var threads: Int
    /// Parallel sequences: the ceiling on `n` per request.
    public var slots: Int
    public var contextTokens: Int
    public var startupTimeout: Double
    /// `qcode-jail`, whose `--tied-to-parent` mode kills the server when qcode
    /// dies, even by SIGKILL. nil: spawn the server directly.
    public var parentTie: URL?
    public var logFile: URL

    public init(binary: URL = QCodeCache.serverBinary, model: URL = EmbeddedModel.small.defaultPath,
                fetchHint: String = "scripts/bootstrap", threads: Int = 2, slots: Int = 8, contextTokens: Int = 16384,
                startupTimeout: Double = 60, parentTie: URL? = nil,
                logFile: URL = QCodeCache.logs.appendingPathComponent("llama-server.log")) {
        self.binary = binary
        self.model = model
        self.fetchHint = fetchHint
        self.threads = threads
        self.slots = slots
        self.contextTokens = contextTokens
        self.startupTimeout = startupTimeout
        self.parentTie = parentTie
        self.logFile = logFile
    }
}

/// The llama-server qcode runs itself when no endpoint is configured: started
/// on a free loopback port, restarted if it dies, stopped with its owner.
public actor EmbeddedServer {
    public let settings: ServerSettings
    private var running: Running?
    /// Starts after the first (a crash, or a stop and a new solve).
    public private(set) var restarts = 0
    private var starts = 0
    private var starting: Task<URL, any Error>?

    private struct Running {
        let process: Process
        let port: Int
        /// Finishes with the exit status: the termination handler resolves it,
        /// so nobody polls or blocks to learn that the server is gone.
        let exited: Task<Int32, Never>
        var url: URL { URL(string: "http://127.0.0.1:\(port)")! }
    }

    public init(settings: ServerSettings = ServerSettings()) {
        self.settings = settings
    }

    public var logFile: URL { settings.logFile }
    public var isRunning: Bool { running?.process.isRunning ?? false }
    /// The pid qcode started (the parent tie when there is one; killing it takes the server along).
    public var pid: Int32? { running.map { $0.process.processIdentifier } }

    /// The server's base URL, starting (or restarting) it when it is not running.
    public func ensureRunning() async throws -> URL {
        // A start in progress first: its process already runs but may still be loading (503).
        if let starting { return try await starting.value }
        if let running, running.process.isRunning { return running.url }
        running = nil
        let task = Task { try await self.start() }
        starting = task
        defer { starting = nil }
        return try await task.value
    }

    /// True when the server that answered at `url` has died (waiting up to a
    /// second for its exit to be noticed: a connection reset can arrive first).
    public func hasDied(servingAt url: URL) async -> Bool {
        guard let r = running, r.url == url else { return true }  // replaced or stopped since
        if await Self.finishes(r.exited, within: 1) {
            if running?.url == url { running = nil }
            return true
        }
        return false
    }

    private func start() async throws -> URL {
        let fm = FileManager.default
        guard fm.isExecutableFile(atPath: settings.binary.path) else {
            throw PolicyError.serverBinaryMissing(settings.binary.path)
        }
        guard fm.fileExists(atPath: settings.model.path) else {
            throw PolicyError.modelMissing(settings.model.path, fix: settings.fetchHint)
        }
        let port = try Self.freeLoopbackPort()
        try fm.createDirectory(at: logFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        _ = fm.createFile(atPath: logFile.path, contents: nil)
        let log = try FileHandle(forWritingTo: logFile)
        defer { try? log.close() }

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
        let (statuses, continuation) = AsyncStream<Int32>.makeStream()
        p.terminationHandler = { process in
            continuation.yield(process.terminationStatus)
            continuation.finish()
        }
        try p.run()
        if starts > 0 { restarts += 1 }
        starts += 1
        let exited = Task { () -> Int32 in
            for await status in statuses { return status }
            return -1
        }
        let server = Running(process: p, port: port, exited: exited)
        running = server

        let client = HTTPLanguageModel(baseURL: server.url)
        let deadline = ContinuousClock.now + .seconds(settings.startupTimeout)
        while ContinuousClock.now < deadline {
            if Task.isCancelled {
                await stop()
                throw CancellationError()
            }
            if !p.isRunning {
                let status = await exited.value
                let tail = (try? String(contentsOf: logFile, encoding: .utf8))?.split(separator: "\n").suffix(3)
                    .joined(separator: " | ") ?? ""
                running = nil
                throw PolicyError.serverFailedToStart("exited with status \(status): \(tail) (log: \(logFile.path))")
            }
            if await client.health(timeout: 1) { return server.url }
            try? await Task.sleep(for: .milliseconds(100))
        }
        await stop()
        throw PolicyError.serverFailedToStart("no answer on /health within \(Int(settings.startupTimeout)) s (log: \(logFile.path))")
    }

    /// SIGTERM, then SIGKILL if it lingers: an orphaned llama-server would hold a GB of memory.
    public func stop() async {
        guard let r = running else { return }
        running = nil
        guard r.process.isRunning else { return }
        r.process.terminate()
        if await !Self.finishes(r.exited, within: 3) {
            kill(r.process.processIdentifier, SIGKILL)
            _ = await r.exited.value
        }
    }

    /// Whether the server exits within `seconds`.
    static func finishes(_ exited: Task<Int32, Never>, within seconds: Double) async -> Bool {
        await Basics.finishes(within: seconds) { _ = await exited.value }
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

/// A language model backed by the embedded server. Each call makes sure the
/// server is up; when the server dies under a call, it is restarted and the
/// call retried once, so a search loses none of the work it already did.
public struct EmbeddedLanguageModel: LanguageModel {
    public let server: EmbeddedServer
    public let options: EndpointOptions
    let transport: any HTTPTransport

    public init(server: EmbeddedServer, options: EndpointOptions = EndpointOptions(), transport: any HTTPTransport = CurlTransport()) {
        self.server = server
        self.options = options
        self.transport = transport
    }

    public func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
        var crashes = 0
        while true {
            let url = try await server.ensureRunning()
            do {
                return try await HTTPLanguageModel(baseURL: url, options: options, transport: transport).complete(request)
            } catch let error as PolicyError where error.isConnectionLoss {
                try Task.checkCancellation()
                guard await server.hasDied(servingAt: url) else {
                    throw PolicyError.embeddedServerUnreachable(url.absoluteString, log: await server.logFile.path)
                }
                crashes += 1
                if crashes >= 2 { throw PolicyError.embeddedServerCrashed(log: await server.logFile.path) }
            }
        }
    }
}

extension PolicyError {
    /// The connection broke or never opened: the server may have died.
    var isConnectionLoss: Bool {
        switch self {
        case .serverUnreachable, .connectionLost, .malformedResponse: return true
        default: return false
        }
    }
}
