import CTreeSitter
import TreeSitterPython

/// Owns one `TSParser`. Kept apart from `PythonParser` so the parser is freed
/// in exactly one place: a class `init` that throws after its stored
/// properties are set still runs `deinit`, so freeing on the error path *and*
/// in `deinit` would double-free.
private final class ParserHandle {
    let raw: OpaquePointer
    init?() {
        guard let p = ts_parser_new() else { return nil }
        raw = p
    }
    deinit { ts_parser_delete(raw) }
}

/// A tree-sitter parser for Python. One per search: a `TSParser` keeps
/// internal state between parses, so this class is deliberately not
/// `Sendable`; the `ParsedProgram`s it returns are.
public final class PythonParser {
    /// The pinned grammar, fetched by scripts/bootstrap.
    public static let grammarVersion = "0.23.6"

    /// For `qcode doctor`, e.g. "tree-sitter-python 0.23.6, ABI 14".
    public static var grammarDescription: String {
        "tree-sitter-python \(grammarVersion), ABI \(ts_language_version(tree_sitter_python()))"
    }

    private let handle: ParserHandle

    public init() throws {
        let language = tree_sitter_python()
        let abi = Int(ts_language_version(language))
        let supported = Int(TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION)...Int(TREE_SITTER_LANGUAGE_VERSION)
        guard supported.contains(abi) else { throw SyntaxError.grammarIncompatible(grammarABI: abi, supported: supported) }
        guard let handle = ParserHandle() else { throw SyntaxError.parserUnavailable }
        guard ts_parser_set_language(handle.raw, language) else {
            throw SyntaxError.grammarIncompatible(grammarABI: abi, supported: supported)
        }
        self.handle = handle
    }

    /// Parses `source` from scratch.
    public func parse(_ source: String) -> ParsedProgram {
        let bytes = Array(source.utf8)
        let lex = LineLexer.scan(bytes)
        let tree = parseTree(bytes, count: bytes.count, old: nil)
        let full = TreeFacts(tree: tree, bytes: bytes)
        let complete = lex.completeEnd == bytes.count && lex.probe.isEmpty ? full : parsePrefix(bytes, lex)
        return ParsedProgram(source: source, bytes: bytes, tree: tree, lex: lex, full: full, complete: complete)
    }

    /// The program `parent.source + text`, reparsed incrementally: the
    /// parent's tree is copied, told about the insertion at its end
    /// (`ts_tree_edit`) and handed to the parser, which reuses every subtree
    /// the insertion cannot affect. A search appends one line per child, so
    /// this is the common path.
    public func extend(_ parent: ParsedProgram, appending text: String) -> ParsedProgram {
        let bytes = parent.bytes + Array(text.utf8)
        let lex = LineLexer.scan(bytes)
        let start = parent.bytes.count
        let startPoint = Self.point(after: parent.bytes, from: 0, base: TSPoint(row: 0, column: 0))
        let endPoint = Self.point(after: bytes, from: start, base: startPoint)
        let old = ts_tree_copy(parent.tree)!
        var edit = TSInputEdit(start_byte: UInt32(start), old_end_byte: UInt32(start), new_end_byte: UInt32(bytes.count),
                               start_point: startPoint, old_end_point: startPoint, new_end_point: endPoint)
        ts_tree_edit(old, &edit)
        let tree = parseTree(bytes, count: bytes.count, old: old)
        ts_tree_delete(old)
        let full = TreeFacts(tree: tree, bytes: bytes)
        // The complete logical lines are often text the parent already judged:
        // reuse that judgement instead of parsing them again.
        let complete: TreeFacts
        if lex.completeEnd == parent.lex.completeEnd {
            complete = parent.complete  // same text, same probe
        } else if !lex.probe.isEmpty {
            complete = parsePrefix(bytes, lex)
        } else if lex.completeEnd == bytes.count {
            complete = full
        } else if lex.completeEnd == start, parent.lex.probe.isEmpty {
            complete = parent.full
        } else {
            complete = parsePrefix(bytes, lex)
        }
        return ParsedProgram(source: parent.source + text, bytes: bytes, tree: tree, lex: lex, full: full, complete: complete)
    }

    /// Facts for the complete logical lines alone, followed by the lexer's probe.
    private func parsePrefix(_ bytes: [UInt8], _ lex: LineLexer.Result) -> TreeFacts {
        let text = Array(bytes[..<lex.completeEnd]) + lex.probe
        let tree = parseTree(text, count: text.count, old: nil)
        defer { ts_tree_delete(tree) }
        var facts = TreeFacts(tree: tree, bytes: text, functionsBefore: lex.completeEnd)
        // An error inside the probe still belongs to the real text before it.
        for i in facts.errors.indices {
            facts.errors[i].start = min(facts.errors[i].start, max(lex.completeEnd - 1, 0))
            facts.errors[i].end = min(facts.errors[i].end, lex.completeEnd)
        }
        return facts
    }

    private func parseTree(_ bytes: [UInt8], count: Int, old: OpaquePointer?) -> OpaquePointer {
        let tree = bytes.withUnsafeBufferPointer { buf -> OpaquePointer? in
            buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(count, 1)) {
                ts_parser_parse_string(handle.raw, old, $0, UInt32(count))
            }
        }
        // NULL only without a language, after a timeout or a cancellation;
        // init sets the language and no timeout or cancellation flag is ever set.
        guard let tree else { preconditionFailure("ts_parser_parse_string returned NULL with a language set and no timeout") }
        return tree
    }

    /// tree-sitter's point (row, byte column) after `bytes[from...]`, starting at `base`.
    static func point(after bytes: [UInt8], from: Int, base: TSPoint) -> TSPoint {
        var p = base
        for i in from..<bytes.count {
            if bytes[i] == 0x0A {
                p.row += 1
                p.column = 0
            } else {
                p.column += 1
            }
        }
        return p
    }
}

/// An immutable parse result. It owns its `TSTree`, which is never edited
/// after creation (`extend` edits a *copy*), and tree-sitter allows reading a
/// tree from several threads when no one mutates it — hence `@unchecked
/// Sendable`, so search nodes can carry it across tasks.
public final class ParsedProgram: @unchecked Sendable {
    public let source: String
    public let report: SyntaxReport
    let bytes: [UInt8]
    let tree: OpaquePointer
    let lex: LineLexer.Result
    /// Facts from the tree of the whole text.
    let full: TreeFacts
    /// Facts from the tree of the complete logical lines only.
    let complete: TreeFacts

    init(source: String, bytes: [UInt8], tree: OpaquePointer, lex: LineLexer.Result, full: TreeFacts, complete: TreeFacts) {
        self.source = source
        self.bytes = bytes
        self.tree = tree
        self.lex = lex
        self.full = full
        self.complete = complete
        self.report = Verdict.report(bytes: bytes, lex: lex, full: full, complete: complete)
    }

    deinit { ts_tree_delete(tree) }

    public var verdict: SyntaxVerdict { report.verdict }
}

/// What the verdict needs from one tree, extracted once so a child can reuse
/// its parent's without keeping a second tree alive.
struct TreeFacts: Sendable {
    struct ErrorNode: Sendable {
        var start: Int
        var end: Int
        var missing: Bool
        var type: String
    }
    var errors: [ErrorNode] = []
    var functions: [FunctionSignature] = []

    /// `functionsBefore`: ignore definitions starting at or after this byte
    /// (the probe's own `def _()`).
    init(tree: OpaquePointer, bytes: [UInt8], functionsBefore: Int = .max) {
        let root = ts_tree_root_node(tree)
        if ts_node_has_error(root) { collectErrors(root) }
        let count = ts_node_named_child_count(root)
        for i in 0..<count {
            var node = ts_node_named_child(root, i)
            if Self.type(node) == "decorated_definition" {
                node = Self.field(node, "definition")
            }
            if !ts_node_is_null(node), Self.type(node) == "function_definition", !ts_node_has_error(node),
               Int(ts_node_start_byte(node)) < functionsBefore, let sig = Self.signature(node, bytes) {
                functions.append(sig)
            }
        }
    }

    private mutating func collectErrors(_ node: TSNode) {
        if ts_node_is_missing(node) {
            errors.append(ErrorNode(start: Int(ts_node_start_byte(node)), end: Int(ts_node_end_byte(node)), missing: true, type: Self.type(node)))
            return
        }
        if ts_node_symbol(node) == 0xFFFF {  // ts_builtin_sym_error; 0.20.7 has no ts_node_is_error
            errors.append(ErrorNode(start: Int(ts_node_start_byte(node)), end: Int(ts_node_end_byte(node)), missing: false, type: "ERROR"))
        }
        let count = ts_node_child_count(node)
        for i in 0..<count {
            let child = ts_node_child(node, i)
            if ts_node_has_error(child) { collectErrors(child) }
        }
    }

    static func type(_ node: TSNode) -> String { String(cString: ts_node_type(node)) }

    static func field(_ node: TSNode, _ name: String) -> TSNode {
        name.withCString { ts_node_child_by_field_name(node, $0, UInt32(name.utf8.count)) }
    }

    static func text(_ node: TSNode, _ bytes: [UInt8]) -> String {
        let s = Int(ts_node_start_byte(node)), e = min(Int(ts_node_end_byte(node)), bytes.count)
        return s < e ? String(decoding: bytes[s..<e], as: UTF8.self) : ""
    }

    static func signature(_ def: TSNode, _ bytes: [UInt8]) -> FunctionSignature? {
        let nameNode = field(def, "name"), params = field(def, "parameters")
        guard !ts_node_is_null(nameNode), !ts_node_is_null(params) else { return nil }
        var names: [String] = []
        var required = 0, positional = 0
        var variadic = false, keywordOnly = false
        for i in 0..<ts_node_named_child_count(params) {
            let p = ts_node_named_child(params, i)
            switch type(p) {
            case "identifier", "typed_parameter":
                let name = type(p) == "identifier" ? text(p, bytes) : text(ts_node_named_child(p, 0), bytes)
                names.append(name)
                if type(p) == "typed_parameter", name.hasPrefix("*") {
                    if name.hasPrefix("**") { } else { variadic = true; keywordOnly = true }
                } else if !keywordOnly {
                    required += 1; positional += 1
                }
            case "default_parameter", "typed_default_parameter":
                names.append(text(field(p, "name"), bytes))
                if !keywordOnly { positional += 1 }
            case "list_splat_pattern":
                names.append(text(p, bytes))
                variadic = true; keywordOnly = true
            case "dictionary_splat_pattern":
                names.append(text(p, bytes))
            case "keyword_separator":
                keywordOnly = true
            default:
                break  // positional_separator, comments
            }
        }
        return FunctionSignature(name: text(nameNode, bytes), parameters: names, minArity: required,
                                 maxArity: variadic ? nil : positional, line: Int(ts_node_start_point(def).row) + 1)
    }
}
