import Basics
import CodeDomain
import Foundation
import Policy
import QStar
import RPC

/// One client's LSP session on one connection: initialize, requests, shutdown, exit.
actor Session {
    enum Phase { case uninitialized, initialized, shutDown }

    nonisolated let id: Int
    nonisolated let connection: Connection
    private let server: DaemonServer
    private var phase = Phase.uninitialized
    private var inflight: [RequestID: Task<Void, Never>] = [:]

    init(id: Int, connection: Connection, server: DaemonServer) {
        self.id = id
        self.connection = connection
        self.server = server
    }

    /// Handles one message; false when the session should end (`exit`).
    func handle(_ message: Message) -> Bool {
        switch message {
        case .notification(let method, let params):
            return notification(method, params)
        case .request(let id, let method, let params):
            request(id, method, params)
        case .response:
            break  // the daemon sends no requests, so there is nothing to match
        }
        return true
    }

    func cancelAll() {
        for task in inflight.values { task.cancel() }
    }

    func waitForRequests() async {
        while let (_, task) = inflight.first {
            await task.value
        }
    }

    private func notification(_ method: String, _ params: JSONValue?) -> Bool {
        switch method {
        case Method.exit:
            return false
        case Method.cancelRequest:
            guard phase != .uninitialized else { return true }
            let id: RequestID?
            switch params?["id"] {
            case .int(let i)?: id = .int(i)
            case .string(let s)?: id = .string(s)
            default: id = nil
            }
            if let id { inflight[id]?.cancel() }
        default:
            break  // notifications never get answers; unknown ones (and `initialized`) are ignored, as LSP says
        }
        return true
    }

    private func reply(_ id: RequestID, _ result: Result<JSONValue, ResponseError>) {
        connection.send(.response(id: id, result: result))
        Task { await server.state.served() }
    }

    private func request(_ id: RequestID, _ method: String, _ params: JSONValue?) {
        if method == Method.initialize {
            guard phase == .uninitialized else {
                return reply(id, .failure(.invalidRequest("the session is already initialized; send 'initialize' once per connection")))
            }
            // Unknown keys are fine (LSP clients send many); a known one of the wrong type is named.
            do { _ = try decodeParams(params, InitializeParams.self, method) } catch {
                return reply(id, .failure(Self.responseError(error)))
            }
            phase = .initialized
            let result = InitializeResult(
                serverInfo: .init(name: "qcode", version: qcodeVersion),
                capabilities: .init(methods: Method.all, solveMethods: Planners.names,
                                    valueModels: ValueChoice.Kind.allCases.map(\.rawValue),
                                    progress: true, cancellation: true, maxFrameBytes: server.settings.maxFrame))
            return reply(id, Result { try JSONValue.encoding(result) }.mapError { .internalError("\($0)") })
        }
        guard phase != .uninitialized else { return reply(id, .failure(.notInitialized)) }
        guard phase != .shutDown else {
            return reply(id, .failure(.invalidRequest("the session is shut down: only 'exit' is accepted now")))
        }
        guard inflight[id] == nil else {
            return reply(id, .failure(.invalidRequest("request id \(id) is already in use by a request in flight")))
        }
        let server = self.server
        let connection = self.connection
        let session = self.id
        let work: @Sendable () async throws -> JSONValue
        switch method {
        case Method.shutdown:
            phase = .shutDown
            return reply(id, .success(.null))
        case Method.stop:
            reply(id, .success(.object(["stopping": .bool(true)])))
            Task.detached { await server.stop() }
            return
        case Method.status:
            work = { try JSONValue.encoding(await server.status()) }
        case Method.check:
            work = { try JSONValue.encoding(try CheckResult.check(try decodeParams(params, CheckParams.self, method))) }
        case Method.test:
            work = { try JSONValue.encoding(try await server.test(try decodeParams(params, TestParams.self, method))) }
        case Method.solve:
            work = {
                let p = try decodeParams(params, SolveParams.self, method)
                return try JSONValue.encoding(try await server.solve(p, id: id, session: session, connection: connection))
            }
        default:
            return reply(id, .failure(.methodNotFound(method)))
        }
        if server.state.isStopping {
            return reply(id, .failure(ResponseError(code: ErrorCode.serverStopping, message: "the daemon is stopping and takes no new work")))
        }
        inflight[id] = Task {
            let result: Result<JSONValue, ResponseError>
            do {
                result = .success(try await work())
            } catch {
                result = .failure(Task.isCancelled ? .cancelled : Self.responseError(error))
            }
            self.finish(id, result)
        }
    }

    private func finish(_ id: RequestID, _ result: Result<JSONValue, ResponseError>) {
        inflight[id] = nil
        reply(id, result)
    }

    static func responseError(_ error: any Error) -> ResponseError {
        switch error {
        case let e as ResponseError: return e
        case is CancellationError: return .cancelled
        case PolicyError.cancelled: return .cancelled
        case let e as OptionError: return .invalidParams("options.\(e.field): \(e.message)")
        default: return .internalError("\(error)")
        }
    }
}

/// `params` as `T`, or the -32602 error that names the parameter at fault:
/// the wording every client of qcode's types sees (the daemon's methods, the
/// LSP server's settings).
public func decodeParams<T: Decodable>(_ params: JSONValue?, _ type: T.Type, _ method: String) throws -> T {
    func path(_ ctx: DecodingError.Context) -> String {
        ctx.codingPath.isEmpty ? "params" : ctx.codingPath.map { JSONCoding.snakeCase($0.stringValue) }.joined(separator: ".")
    }
    do {
        return try (params ?? .object([:])).decode(T.self)
    } catch let DecodingError.keyNotFound(key, ctx) {
        let at = (ctx.codingPath + [key]).map { JSONCoding.snakeCase($0.stringValue) }.joined(separator: ".")
        throw ResponseError.invalidParams("\(method): missing parameter '\(at)'")
    } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
        throw ResponseError.invalidParams("\(method): parameter '\(path(ctx))' has the wrong type (\(ctx.debugDescription))")
    } catch let DecodingError.dataCorrupted(ctx) {
        if ctx.codingPath.isEmpty, let (at, number) = misfitNumber(params ?? .object([:]), T.self) {
            throw ResponseError.invalidParams("\(method): parameter '\(at)' must be a whole number that fits, not \(number)")
        }
        throw ResponseError.invalidParams("\(method): parameter '\(path(ctx))': \(ctx.debugDescription)")
    } catch {
        throw ResponseError.invalidParams("\(method): invalid params (\(error))")
    }
}

/// Foundation reports a number that does not fit the integer a field holds
/// (`2.5`, `-1` for a seed, `1e300`) as "The given data was not valid JSON",
/// with no path; a client deserves to know which parameter. The culprit is
/// the number that alone, with every other number set to 0, still fails so.
func misfitNumber<T: Decodable>(_ params: JSONValue, _ type: T.Type) -> (path: String, number: String)? {
    func numbers(_ v: JSONValue, _ path: [String]) -> [[String]] {
        switch v {
        case .int, .double: return [path]
        case .array(let a): return a.indices.flatMap { numbers(a[$0], path + [String($0)]) }
        case .object(let o): return o.keys.sorted().flatMap { numbers(o[$0]!, path + [$0]) }
        default: return []
        }
    }
    func replacing(_ v: JSONValue, _ path: ArraySlice<String>, _ new: JSONValue) -> JSONValue {
        guard let key = path.first else { return new }
        switch v {
        case .array(var a): if let i = Int(key), a.indices.contains(i) { a[i] = replacing(a[i], path.dropFirst(), new) }; return .array(a)
        case .object(var o): if let inner = o[key] { o[key] = replacing(inner, path.dropFirst(), new) }; return .object(o)
        default: return v
        }
    }
    func value(_ v: JSONValue, _ path: [String]) -> JSONValue? {
        path.reduce(Optional(v)) { v, key in
            switch v {
            case .array(let a)?: return Int(key).flatMap { a.indices.contains($0) ? a[$0] : nil }
            case .object(let o)?: return o[key]
            default: return nil
            }
        }
    }
    func failsUnreadably(_ v: JSONValue) -> Bool {
        do { _ = try v.decode(T.self) } catch let DecodingError.dataCorrupted(ctx) where ctx.codingPath.isEmpty { return true } catch {}
        return false
    }
    // One decode per number: bounded, so a huge request cannot make the search costly.
    let all = numbers(params, [])
    guard all.count <= 64, ((try? JSONCoding.encoder.encode(params))?.count ?? .max) <= 64 << 10 else { return nil }
    for path in all {
        let alone = all.filter { $0 != path }.reduce(params) { replacing($0, $1[...], .int(0)) }
        if failsUnreadably(alone), let number = value(params, path) {
            let text: String
            switch number {
            case .int(let i): text = String(i)
            case .double(let d): text = "\(d)"
            default: text = "?"
            }
            return (path.joined(separator: "."), text)
        }
    }
    return nil
}
