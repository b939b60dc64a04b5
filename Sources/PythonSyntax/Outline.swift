import CTreeSitter

/// One statement of a function body, and whether it is a stub's placeholder.
public struct BodyStatement: Sendable, Hashable {
    public enum Placeholder: String, Sendable, Hashable {
        /// `...`
        case ellipsis
        /// `pass`
        case pass
        /// `raise NotImplementedError` or `raise NotImplementedError(...)`
        case notImplemented
    }
    /// UTF-8 byte range in the module.
    public var range: Range<Int>
    /// nil: real code, so the body is not a stub.
    public var placeholder: Placeholder?
    /// The statement's text, for error messages.
    public var text: String
}

/// Where a function definition sits in a module, in UTF-8 byte offsets: what a
/// stub task needs to replace its body and keep every other byte.
public struct FunctionSite: Sendable, Hashable {
    /// `name` for a module-level function, `Class.name` for a method.
    public var qualifiedName: String
    public var name: String
    /// The first decorator, or `def` (`async def`) when there is none.
    public var start: Int
    /// The end of the definition's last statement.
    public var end: Int
    /// Just after the header's `:`.
    public var headerEnd: Int
    /// Column (bytes) of `def`, and of the body's first statement.
    public var column: Int
    public var bodyColumn: Int
    /// 1-based line of `def`.
    public var line: Int
    /// The docstring's string literal (its source text's range), when the body starts with one.
    public var docstring: Range<Int>?
    /// 1-based line where the docstring starts.
    public var docstringLine: Int?
    /// The body's statements after the docstring.
    public var statements: [BodyStatement]
    /// The parameters as written (`(a, b: int = 1)`), for prompts and messages.
    public var parameters: String

    /// Empty, or only placeholders (`...`, `pass`, `raise NotImplementedError`).
    public var isStub: Bool { statements.allSatisfy { $0.placeholder != nil } }
}

/// The functions of a module as tree-sitter sees them: module-level defs and the
/// methods of module-level classes (decorated ones included).
public enum ModuleOutline {
    public struct Result: Sendable {
        public var functions: [FunctionSite]
        /// Why the module does not parse (empty when it does).
        public var issues: [SyntaxIssue]
        public var verdict: SyntaxVerdict
    }

    public static func read(_ source: String) throws -> Result {
        let parser = try PythonParser()
        let program = parser.parse(source)
        var sites: [FunctionSite] = []
        let root = ts_tree_root_node(program.tree)
        let bytes = program.bytes
        for i in 0..<ts_node_named_child_count(root) {
            let (node, start) = unwrap(ts_node_named_child(root, i))
            switch TreeFacts.type(node) {
            case "function_definition":
                if let site = site(node, start: start, bytes: bytes, owner: nil) { sites.append(site) }
            case "class_definition":
                let className = TreeFacts.text(TreeFacts.field(node, "name"), bytes)
                let body = TreeFacts.field(node, "body")
                guard !ts_node_is_null(body) else { continue }
                for j in 0..<ts_node_named_child_count(body) {
                    let (member, memberStart) = unwrap(ts_node_named_child(body, j))
                    if TreeFacts.type(member) == "function_definition",
                       let site = site(member, start: memberStart, bytes: bytes, owner: className) {
                        sites.append(site)
                    }
                }
            default:
                continue
            }
        }
        return Result(functions: sites, issues: program.report.issues, verdict: program.verdict)
    }

    /// A decorated definition's inner definition, and where the decorators start.
    private static func unwrap(_ node: TSNode) -> (TSNode, Int) {
        let start = Int(ts_node_start_byte(node))
        if TreeFacts.type(node) == "decorated_definition" {
            let inner = TreeFacts.field(node, "definition")
            if !ts_node_is_null(inner) { return (inner, start) }
        }
        return (node, start)
    }

    private static func site(_ def: TSNode, start: Int, bytes: [UInt8], owner: String?) -> FunctionSite? {
        let nameNode = TreeFacts.field(def, "name"), body = TreeFacts.field(def, "body")
        let params = TreeFacts.field(def, "parameters")
        guard !ts_node_is_null(nameNode), !ts_node_is_null(body) else { return nil }
        let name = TreeFacts.text(nameNode, bytes)
        // The header ends at the `:` before the body: the last anonymous ":" child of the def.
        var headerEnd = Int(ts_node_start_byte(body))
        for k in 0..<ts_node_child_count(def) {
            let child = ts_node_child(def, k)
            if !ts_node_is_named(child), TreeFacts.type(child) == ":" { headerEnd = Int(ts_node_end_byte(child)) }
        }
        var statements: [BodyStatement] = []
        var docstring: Range<Int>?
        var docstringLine: Int?
        var first = true
        for k in 0..<ts_node_named_child_count(body) {
            let stmt = ts_node_named_child(body, k)
            let type = TreeFacts.type(stmt)
            if type == "comment" { continue }
            let range = Int(ts_node_start_byte(stmt))..<Int(ts_node_end_byte(stmt))
            if first, type == "expression_statement", ts_node_named_child_count(stmt) == 1,
               ["string", "concatenated_string"].contains(TreeFacts.type(ts_node_named_child(stmt, 0))) {
                docstring = range
                docstringLine = Int(ts_node_start_point(stmt).row) + 1
                first = false
                continue
            }
            first = false
            statements.append(BodyStatement(range: range, placeholder: placeholder(stmt, bytes),
                                             text: TreeFacts.text(stmt, bytes)))
        }
        let column = Int(ts_node_start_point(def).column)
        let bodyColumn = ts_node_named_child_count(body) > 0 ? Int(ts_node_start_point(body).column) : column + 4
        return FunctionSite(qualifiedName: owner.map { "\($0).\(name)" } ?? name, name: name, start: start,
                            end: Int(ts_node_end_byte(def)), headerEnd: headerEnd, column: column,
                            bodyColumn: max(bodyColumn, column + 1), line: Int(ts_node_start_point(def).row) + 1,
                            docstring: docstring, docstringLine: docstringLine, statements: statements,
                            parameters: ts_node_is_null(params) ? "()" : TreeFacts.text(params, bytes))
    }

    private static func placeholder(_ stmt: TSNode, _ bytes: [UInt8]) -> BodyStatement.Placeholder? {
        switch TreeFacts.type(stmt) {
        case "pass_statement":
            return .pass
        case "expression_statement":
            guard ts_node_named_child_count(stmt) == 1 else { return nil }
            return TreeFacts.type(ts_node_named_child(stmt, 0)) == "ellipsis" ? .ellipsis : nil
        case "raise_statement":
            guard ts_node_named_child_count(stmt) == 1 else { return nil }
            var raised = ts_node_named_child(stmt, 0)
            if TreeFacts.type(raised) == "call" { raised = TreeFacts.field(raised, "function") }
            return TreeFacts.type(raised) == "identifier" && TreeFacts.text(raised, bytes) == "NotImplementedError"
                ? .notImplemented : nil
        default:
            return nil
        }
    }
}
