import Basics
import CodeDomain
import Foundation
import Policy
import QStar
import RPC
import Sandbox
import Synchronization
import Testing
import TestSupport
@testable import Daemon

let addSpec = TaskSpec(addTask)

func makeServer(_ model: any LanguageModel = InstantModel(), settings: DaemonSettings = DaemonSettings(),
                planners: [any SearchAlgorithm] = Planners.all,
                verifier: @escaping @Sendable (Double) throws -> any ProgramVerifier = { _ in ScriptedVerifier() }) -> DaemonServer {
    var settings = settings
    settings.progressInterval = 0  // every report reaches the tests
    return DaemonServer(components: Components(model: model, verifier: verifier, planners: planners), settings: settings)
}

extension RPCClient {
    @discardableResult
    func initialize() async throws -> JSONValue {
        try await request("initialize", ["process_id": .int(Int(getpid())), "client_info": ["name": "tests"]])
    }

    func solve(_ method: String = "greedy", options: [String: JSONValue] = [:], id: RequestID? = nil) async throws -> JSONValue {
        var options = options
        options["method"] = .string(method)
        return try await request("qcode/solve", ["task": try JSONValue.encoding(addSpec), "options": .object(options)], id: id)
    }
}

/// The error a call threw, as a ResponseError (fails the test otherwise).
func responseError(_ body: () async throws -> Any) async -> ResponseError? {
    do {
        _ = try await body()
        Issue.record("expected an error response")
        return nil
    } catch let e as ResponseError {
        return e
    } catch {
        Issue.record("expected a ResponseError, got \(error)")
        return nil
    }
}

/// A raw socket for sending bytes the client never would.
struct RawPeer {
    let connection: Connection
    let bodies: AsyncThrowingStream<Data, any Error>

    init(_ fd: Int32) {
        connection = Connection(fd: fd)
        bodies = connection.bodies()
    }

    /// The next message, or nil at end of stream.
    func next(timeout: Double = 30) async throws -> Message? {
        let stream = bodies
        return try await within(timeout, "reading a message") { () -> Message?? in
            var it = stream.makeAsyncIterator()
            guard let body = try await it.next() else { return .some(nil) }
            return .some(try Message.decode(body).get())
        } ?? nil
    }
}

actor Recorder {
    var items: [String] = []
    func add(_ s: String) { items.append(s) }
}

final class Box: Sendable {
    let values = Mutex<[JSONValue]>([])
    func add(_ v: JSONValue) { values.withLock { $0.append(v) } }
    var items: [JSONValue] { values.withLock { $0 } }
}

/// A planner that records what it was handed and returns at once: where the
/// options end up, observed at the seam every planner shares.
final class RecordingPlanner: SearchAlgorithm {
    let name: String
    let summary = "records its context"
    let usesValueModel = true
    let settings = Mutex<[SearchSettings]>([])
    let domainOptions = Mutex<[SolveOptions]>([])
    init(name: String) { self.name = name }

    func run<Domain: PlanningDomain>(_ context: SearchContext<Domain>) async throws -> SearchResult<Domain.State> {
        settings.withLock { $0.append(context.settings) }
        if let code = context.domain as? CodeSearchDomain { domainOptions.withLock { $0.append(code.options) } }
        return SearchResult(best: nil, bestVerification: nil, bestNode: nil, statistics: SearchStatistics(), trace: [.root])
    }
}
