import CodeDomain
import Foundation
import RPC

/// The LSP 3.17 methods `qcode lsp` speaks.
public enum LSPMethod {
    public static let initialize = "initialize"
    public static let initialized = "initialized"
    public static let shutdown = "shutdown"
    public static let exit = "exit"
    public static let cancelRequest = "$/cancelRequest"
    public static let progress = "$/progress"
    public static let didOpen = "textDocument/didOpen"
    public static let didChange = "textDocument/didChange"
    public static let didClose = "textDocument/didClose"
    public static let codeAction = "textDocument/codeAction"
    public static let executeCommand = "workspace/executeCommand"
    public static let didChangeConfiguration = "workspace/didChangeConfiguration"
    public static let applyEdit = "workspace/applyEdit"
    public static let workDoneProgressCreate = "window/workDoneProgress/create"
    public static let workDoneProgressCancel = "window/workDoneProgress/cancel"
    public static let showMessage = "window/showMessage"
}

/// The commands of `executeCommandProvider`.
public enum LSPCommand {
    /// Arguments: one `ImplementArguments`.
    public static let implement = "qcode.implement"
    /// Arguments: none (every running implement), or `{uri}` / `{uri, function}`.
    public static let cancel = "qcode.cancel"
    public static let all = [implement, cancel]
}

/// LSP's wire style: camelCase keys as the specification writes them (the
/// daemon's protocol is snake_case; the two never share a coder).
public enum LSPCoding {
    public static func value<T: Encodable>(_ v: T) throws -> JSONValue {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try JSONDecoder().decode(JSONValue.self, from: e.encode(v))
    }

    public static func decode<T: Decodable>(_ v: JSONValue?, as type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: JSONEncoder().encode(v ?? .object([:])))
    }
}

public typealias Position = TextEdit.Position
public typealias LSPRange = TextEdit.Range

public struct TextDocumentIdentifier: Codable, Sendable, Hashable {
    public var uri: String
    public init(uri: String) { self.uri = uri }
}

/// A document at a version; `version` is null only for a file the editor has not opened.
public struct VersionedTextDocumentIdentifier: Codable, Sendable, Hashable {
    public var uri: String
    public var version: Int?
    public init(uri: String, version: Int?) {
        self.uri = uri
        self.version = version
    }
}

public struct TextDocumentItem: Codable, Sendable {
    public var uri: String
    public var languageId: String
    public var version: Int
    public var text: String
    public init(uri: String, languageId: String = "python", version: Int, text: String) {
        self.uri = uri
        self.languageId = languageId
        self.version = version
        self.text = text
    }
}

public struct DidOpenTextDocumentParams: Codable, Sendable {
    public var textDocument: TextDocumentItem
    public init(textDocument: TextDocumentItem) { self.textDocument = textDocument }
}

/// A whole new text (full sync), or a range replaced (incremental).
public struct TextDocumentContentChangeEvent: Codable, Sendable {
    public var range: LSPRange?
    public var text: String
    public init(range: LSPRange? = nil, text: String) {
        self.range = range
        self.text = text
    }
}

public struct DidChangeTextDocumentParams: Codable, Sendable {
    public var textDocument: VersionedTextDocumentIdentifier
    public var contentChanges: [TextDocumentContentChangeEvent]
    public init(textDocument: VersionedTextDocumentIdentifier, contentChanges: [TextDocumentContentChangeEvent]) {
        self.textDocument = textDocument
        self.contentChanges = contentChanges
    }
}

public struct DidCloseTextDocumentParams: Codable, Sendable {
    public var textDocument: TextDocumentIdentifier
}

public struct CodeActionParams: Codable, Sendable {
    public struct Context: Codable, Sendable {
        /// Kinds the client wants; nil: any. Neovim 0.7 sends one kind as a string.
        public var only: [String]?

        enum CodingKeys: String, CodingKey { case only }
        public init(only: [String]? = nil) { self.only = only }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            if let one = try? c.decodeIfPresent(String.self, forKey: .only) {
                only = [one]
            } else {
                only = try c.decodeIfPresent([String].self, forKey: .only)
            }
        }
    }
    public var textDocument: TextDocumentIdentifier
    public var range: LSPRange
    public var context: Context?
    public init(textDocument: TextDocumentIdentifier, range: LSPRange, context: Context? = nil) {
        self.textDocument = textDocument
        self.range = range
        self.context = context
    }
}

public struct Command: Codable, Sendable, Hashable {
    public var title: String
    public var command: String
    public var arguments: [JSONValue]?
    public init(title: String, command: String, arguments: [JSONValue]? = nil) {
        self.title = title
        self.command = command
        self.arguments = arguments
    }
}

public struct LSPCodeAction: Codable, Sendable, Hashable {
    public var title: String
    public var kind: String
    public var command: Command?
    public init(title: String, kind: String, command: Command?) {
        self.title = title
        self.kind = kind
        self.command = command
    }
}

/// What "Implement with qcode" carries to `qcode.implement`.
public struct ImplementArguments: Codable, Sendable, Hashable {
    public var uri: String
    /// `name`, or `Class.name` for a method.
    public var function: String
    /// The document's version when the action was offered (informational: the
    /// edit is computed against the text when the search ends).
    public var version: Int?
    public init(uri: String, function: String, version: Int? = nil) {
        self.uri = uri
        self.function = function
        self.version = version
    }
}

public struct ExecuteCommandParams: Codable, Sendable {
    public var command: String
    public var arguments: [JSONValue]?
    /// A progress token the client made itself (client-initiated progress).
    public var workDoneToken: JSONValue?
    public init(command: String, arguments: [JSONValue]? = nil, workDoneToken: JSONValue? = nil) {
        self.command = command
        self.arguments = arguments
        self.workDoneToken = workDoneToken
    }
}

public struct TextDocumentEdit: Codable, Sendable, Hashable {
    public var textDocument: VersionedTextDocumentIdentifier
    public var edits: [TextEdit]
}

public struct WorkspaceEdit: Codable, Sendable, Hashable {
    /// Versioned: the client refuses them when its document is newer.
    public var documentChanges: [TextDocumentEdit]?
    /// Unversioned, for clients without `documentChanges`.
    public var changes: [String: [TextEdit]]?
}

public struct ApplyWorkspaceEditParams: Codable, Sendable {
    public var label: String?
    public var edit: WorkspaceEdit
}

public struct ApplyWorkspaceEditResult: Codable, Sendable {
    public var applied: Bool
    public var failureReason: String?
}

/// `$/progress`'s value for work-done progress.
public struct WorkDoneProgress: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable { case begin, report, end }
    public var kind: Kind
    public var title: String?
    public var cancellable: Bool?
    public var message: String?
    public var percentage: Int?
    public init(kind: Kind, title: String? = nil, cancellable: Bool? = nil, message: String? = nil, percentage: Int? = nil) {
        self.kind = kind
        self.title = title
        self.cancellable = cancellable
        self.message = message
        self.percentage = percentage
    }
}

public struct ProgressParams: Codable, Sendable {
    public var token: JSONValue
    public var value: WorkDoneProgress
}

public struct MessageType: RawRepresentable, Codable, Sendable, Hashable {
    public var rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public static let error = MessageType(rawValue: 1)
    public static let warning = MessageType(rawValue: 2)
    public static let info = MessageType(rawValue: 3)
}

public struct ShowMessageParams: Codable, Sendable, Hashable {
    public var type: MessageType
    public var message: String
    public init(type: MessageType, message: String) {
        self.type = type
        self.message = message
    }
}

/// The parts of the client's `initialize` qcode reads; everything else is ignored.
public struct LSPInitializeParams: Codable, Sendable {
    public struct Capabilities: Codable, Sendable {
        public struct Window: Codable, Sendable { public var workDoneProgress: Bool? }
        public struct Workspace: Codable, Sendable {
            public struct Edit: Codable, Sendable { public var documentChanges: Bool? }
            public var applyEdit: Bool?
            public var workspaceEdit: Edit?
        }
        public var window: Window?
        public var workspace: Workspace?
    }
    public struct ClientInfo: Codable, Sendable {
        public var name: String
        public var version: String?
    }
    public var processId: Int?
    public var clientInfo: ClientInfo?
    public var capabilities: Capabilities?
    public var initializationOptions: JSONValue?
}

public struct ServerCapabilities: Codable, Sendable {
    public struct Sync: Codable, Sendable {
        public var openClose = true
        /// 1: full text on every change.
        public var change = 1
    }
    public struct CodeActionOptions: Codable, Sendable {
        public var codeActionKinds = [CodeActionKind.rewrite]
    }
    public struct ExecuteCommandOptions: Codable, Sendable {
        public var commands = LSPCommand.all
    }
    public var textDocumentSync = Sync()
    public var codeActionProvider = CodeActionOptions()
    public var executeCommandProvider = ExecuteCommandOptions()
}

public enum CodeActionKind {
    public static let rewrite = "refactor.rewrite"

    /// Whether an action of `kind` passes the client's `only` filter: a kind
    /// matches itself and every kind it is a prefix of, dot-separated.
    public static func allowed(_ kind: String, by only: [String]?) -> Bool {
        guard let only, !only.isEmpty else { return true }
        return only.contains { kind == $0 || kind.hasPrefix($0 + ".") }
    }
}

public struct LSPInitializeResult: Codable, Sendable {
    public struct ServerInfo: Codable, Sendable {
        public var name: String
        public var version: String
    }
    public var capabilities: ServerCapabilities
    public var serverInfo: ServerInfo
}
