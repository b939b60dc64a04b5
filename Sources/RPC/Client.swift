import Foundation
import Synchronization

/// A JSON-RPC client over one `Connection`: the CLI's and the tests' way in.
/// Responses are matched to requests by id; notifications go to a handler.
///
/// Made with `peer(_:)` it is both ends of a conversation where either side
/// asks (an LSP server and its editor): what the other side sends that is not
/// an answer comes out of a stream, in the order it arrived.
public final class RPCClient: Sendable {
    /// A message from the other side that is not an answer to one of ours.
    public enum Incoming: Sendable {
        case request(id: RequestID, method: String, params: JSONValue?)
        case notification(method: String, params: JSONValue?)
        /// A body that is not a JSON-RPC message: answer it with `failure.error` (to `failure.id`).
        case invalid(Message.DecodingFailure)
    }

    public let connection: Connection
    private let incoming: AsyncStream<Incoming>.Continuation?
    private struct State {
        var nextID = 1
        var pending: [RequestID: CheckedContinuation<JSONValue, any Error>] = [:]
        var ended: (any Error)?
        var notificationHandler: (@Sendable (String, JSONValue?) -> Void)?
    }
    private let state = Mutex(State())

    public enum ClientError: Error, Sendable, CustomStringConvertible {
        case connectionClosed(String)
        public var description: String {
            switch self {
            case .connectionClosed(let why):
                return "the qcode daemon closed the connection before it answered (\(why)): it stopped, crashed or was killed; "
                    + "see its log (`qcode config` shows log_file), then run the command again (a new daemon starts by itself)"
            }
        }
    }

    public convenience init(connection: Connection) {
        self.init(connection: connection, incoming: nil)
    }

    /// A client that also takes requests: the other side's requests and
    /// notifications, in order; the stream ends with the connection.
    public static func peer(_ connection: Connection) -> (RPCClient, AsyncStream<Incoming>) {
        let (stream, continuation) = AsyncStream<Incoming>.makeStream()
        return (RPCClient(connection: connection, incoming: continuation), stream)
    }

    private init(connection: Connection, incoming: AsyncStream<Incoming>.Continuation?) {
        self.connection = connection
        self.incoming = incoming
        let stream = connection.bodies()
        Task.detached { [weak self] in
            var why = "end of stream"
            do {
                for try await body in stream { self?.receive(body) }
            } catch {
                why = "\(error)"
            }
            self?.finish(ClientError.connectionClosed(why))
        }
    }

    public convenience init(socketPath: String) throws {
        self.init(connection: Connection(fd: try UnixSocket.connect(socketPath)))
    }

    public func onNotification(_ handler: @escaping @Sendable (String, JSONValue?) -> Void) {
        state.withLock { $0.notificationHandler = handler }
    }

    /// Allocates the id the next request will use (for `$/cancelRequest`).
    public func makeID() -> RequestID {
        state.withLock { s in
            defer { s.nextID += 1 }
            return .int(s.nextID)
        }
    }

    /// Sends a request and waits for its response; a `ResponseError` is thrown.
    /// Cancelling the calling task sends `$/cancelRequest` and keeps waiting
    /// for the daemon's answer (normally -32800).
    public func request(_ method: String, _ params: JSONValue? = nil, id: RequestID? = nil) async throws -> JSONValue {
        let id = id ?? makeID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<JSONValue, any Error>) in
                let failure: (any Error)? = state.withLock {
                    if let ended = $0.ended { return ended }
                    $0.pending[id] = cont
                    return nil
                }
                if let failure { cont.resume(throwing: failure); return }
                connection.send(.request(id: id, method: method, params: params))
            }
        } onCancel: {
            self.notify("$/cancelRequest", .object(["id": id.json]))
        }
    }

    public func request<P: Encodable, R: Decodable>(_ method: String, _ params: P, as: R.Type) async throws -> R {
        try await request(method, JSONValue.encoding(params)).decode(R.self)
    }

    public func notify(_ method: String, _ params: JSONValue? = nil) {
        connection.send(.notification(method: method, params: params))
    }

    public func close() {
        connection.close()
    }

    /// Answers a request of the other side's (a peer's).
    public func respond(_ id: RequestID, _ result: Result<JSONValue, ResponseError>) {
        connection.send(.response(id: id, result: result))
    }

    private func receive(_ body: Data) {
        let message: Message
        switch Message.decode(body) {
        case .success(let m): message = m
        case .failure(let f): incoming?.yield(.invalid(f)); return
        }
        switch message {
        case .response(let id?, let result):
            let cont = state.withLock { $0.pending.removeValue(forKey: id) }
            switch result {
            case .success(let v): cont?.resume(returning: v)
            case .failure(let e): cont?.resume(throwing: e)
            }
        case .notification(let method, let params):
            let handler = state.withLock { $0.notificationHandler }
            handler?(method, params)
            incoming?.yield(.notification(method: method, params: params))
        case .request(let id, let method, let params):
            incoming?.yield(.request(id: id, method: method, params: params))
        case .response(nil, _):
            break
        }
    }

    private func finish(_ error: any Error) {
        incoming?.finish()
        let waiting = state.withLock { s in
            s.ended = error
            defer { s.pending = [:] }
            return s.pending
        }
        for cont in waiting.values { cont.resume(throwing: error) }
    }
}
