import Foundation

/// A JSON-RPC request id: a number or a string (null only in error responses
/// to messages whose id could not be read).
public enum RequestID: Sendable, Hashable, Codable, CustomStringConvertible {
    case int(Int)
    case string(String)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int.self) { self = .int(i) } else { self = .string(try c.decode(String.self)) }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let i): try c.encode(i)
        case .string(let s): try c.encode(s)
        }
    }
    public var description: String {
        switch self {
        case .int(let i): return String(i)
        case .string(let s): return "\"\(s)\""
        }
    }
    public var json: JSONValue {
        switch self {
        case .int(let i): return .int(i)
        case .string(let s): return .string(s)
        }
    }
}

/// Error codes as JSON-RPC 2.0 and LSP define them, plus qcode's own in the
/// range JSON-RPC leaves to servers.
public enum ErrorCode {
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    /// LSP: a request before `initialize`.
    public static let serverNotInitialized = -32002
    /// LSP: the client cancelled the request.
    public static let requestCancelled = -32800
    /// qcode: the solve queue is full; retry later.
    public static let serverBusy = -32000
    /// qcode: the daemon is stopping and takes no new work.
    public static let serverStopping = -32001
}

public struct ResponseError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { "\(message) (error \(code))" }

    public static func parseError(_ m: String) -> Self { .init(code: ErrorCode.parseError, message: m) }
    public static func invalidRequest(_ m: String) -> Self { .init(code: ErrorCode.invalidRequest, message: m) }
    public static func methodNotFound(_ method: String) -> Self {
        .init(code: ErrorCode.methodNotFound, message: "unknown method '\(method)'; see docs/protocol.md for the methods qcode serves")
    }
    public static func invalidParams(_ m: String) -> Self { .init(code: ErrorCode.invalidParams, message: m) }
    public static func internalError(_ m: String) -> Self { .init(code: ErrorCode.internalError, message: m) }
    public static let notInitialized = ResponseError(code: ErrorCode.serverNotInitialized,
                                                     message: "send 'initialize' first: the session is not initialized")
    public static let cancelled = ResponseError(code: ErrorCode.requestCancelled, message: "request cancelled")
}

/// One JSON-RPC 2.0 message.
public enum Message: Sendable, Hashable {
    case request(id: RequestID, method: String, params: JSONValue?)
    case notification(method: String, params: JSONValue?)
    /// `id` is nil only for errors about a message whose id was unreadable.
    case response(id: RequestID?, result: Result<JSONValue, ResponseError>)

    /// Why a body is not a message, with the id to answer to when one was readable.
    public struct DecodingFailure: Error, Sendable {
        public var id: RequestID?
        public var error: ResponseError
    }

    public static func decode(_ body: Data) -> Result<Message, DecodingFailure> {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: body) else {
            return .failure(.init(id: nil, error: .parseError("the message body is not valid JSON")))
        }
        guard case .object(let o) = value else {
            return .failure(.init(id: nil, error: .invalidRequest("a message must be a JSON object (batches are not supported)")))
        }
        var id: RequestID?
        switch o["id"] {
        case nil, .null?: id = nil
        case .int(let i)?: id = .int(i)
        case .string(let s)?: id = .string(s)
        default: return .failure(.init(id: nil, error: .invalidRequest("'id' must be an integer or a string")))
        }
        guard o["jsonrpc"] == .string("2.0") else {
            return .failure(.init(id: id, error: .invalidRequest("'jsonrpc' must be \"2.0\"")))
        }
        let params = o["params"]
        if let p = params, !(p.isStructured) {
            return .failure(.init(id: id, error: .invalidRequest("'params' must be an object or an array")))
        }
        if let m = o["method"] {
            guard case .string(let method) = m else {
                return .failure(.init(id: id, error: .invalidRequest("'method' must be a string")))
            }
            if let id { return .success(.request(id: id, method: method, params: params)) }
            if o["id"] == nil { return .success(.notification(method: method, params: params)) }
            return .failure(.init(id: nil, error: .invalidRequest("a request id must not be null")))
        }
        if let r = o["result"] { return .success(.response(id: id, result: .success(r))) }
        if let e = o["error"], let err = try? e.decode(ResponseError.self) {
            return .success(.response(id: id, result: .failure(err)))
        }
        return .failure(.init(id: id, error: .invalidRequest("a message needs 'method', 'result' or 'error'")))
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = ["jsonrpc": .string("2.0")]
        switch self {
        case .request(let id, let method, let params):
            o["id"] = id.json
            o["method"] = .string(method)
            if let params { o["params"] = params }
        case .notification(let method, let params):
            o["method"] = .string(method)
            if let params { o["params"] = params }
        case .response(let id, let result):
            o["id"] = id?.json ?? .null
            switch result {
            case .success(let r): o["result"] = r
            case .failure(let e):
                var err: [String: JSONValue] = ["code": .int(e.code), "message": .string(e.message)]
                if let d = e.data { err["data"] = d }
                o["error"] = .object(err)
            }
        }
        return .object(o)
    }

    public func encoded() -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? e.encode(json)) ?? Data()
    }
}

extension JSONValue {
    var isStructured: Bool {
        switch self {
        case .object, .array: return true
        default: return false
        }
    }
}
