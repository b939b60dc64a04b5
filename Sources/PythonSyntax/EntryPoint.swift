/// The function a task's tests call, so the search can tell early whether the
/// program defines what will be tested, and with a signature the call fits.
public struct EntryPoint: Sendable, Hashable, Codable {
    public var name: String
    /// Arguments in the test's call (positional and keyword); nil when no test
    /// calls the function (a name given explicitly, tests elsewhere).
    public var arity: Int?

    public init(name: String, arity: Int?) {
        self.name = name
        self.arity = arity
    }

    /// The one resolver every part of qcode uses: an explicit name wins, with
    /// the arity of the first test that calls it; else the first call a test
    /// makes to a non-builtin function.
    public static func resolve(name explicit: String?, tests: [String]) -> EntryPoint? {
        if let explicit, !explicit.isEmpty {
            return EntryPoint(name: explicit, arity: tests.lazy.compactMap { call(to: explicit, in: $0)?.arity }.first)
        }
        return tests.lazy.compactMap { firstCall(in: $0) }.first
    }

    /// The first call to a non-builtin function in a test such as
    /// `assert f(1, 2) == 3`: builtin wrappers (`set(f(x))`, `math.isclose(f(x), …)`)
    /// and attribute calls are looked through. Nil when the test calls nothing else.
    public static func firstCall(in test: String) -> EntryPoint? {
        scan(test) { name in !wrappers.contains(name) && !keywords.contains(name) }
    }

    /// The first call to `name` in `test`, wherever it stands.
    public static func call(to name: String, in test: String) -> EntryPoint? {
        scan(test) { $0 == name }
    }

    /// Callees that wrap the tested call in MBPP-style asserts.
    static let wrappers: Set<Substring> = [
        "set", "sorted", "list", "tuple", "dict", "frozenset", "len", "abs", "round", "str", "int", "float",
        "bool", "sum", "min", "max", "any", "all", "isinstance", "type", "repr", "print", "map", "filter", "zip",
        "enumerate", "range", "reversed", "iter", "next",
    ]
    static let keywords: Set<Substring> = [
        "assert", "and", "or", "not", "in", "is", "if", "else", "lambda", "None", "True", "False", "for", "return",
    ]

    private static func scan(_ test: String, accept: (Substring) -> Bool) -> EntryPoint? {
        let tokenizer = PythonTokenizer(test)
        let tokens = Array(tokenizer)
        for (k, t) in tokens.enumerated() {
            if t.kind == .comment { break }
            guard t.kind == .name, k + 1 < tokens.count else { continue }
            let next = tokens[k + 1]
            guard next.kind == .op, tokenizer.text(of: next) == "(" else { continue }
            if k > 0, tokens[k - 1].kind == .op, tokenizer.text(of: tokens[k - 1]) == "." { continue }
            let name = tokenizer.text(of: t)
            guard accept(name) else { continue }
            return EntryPoint(name: String(name), arity: arguments(tokens, open: k + 1, tokenizer))
        }
        return nil
    }

    /// Top-level arguments between the bracket at `open` and its closer;
    /// `f(a, b,)` has two.
    private static func arguments(_ tokens: [PythonToken], open: Int, _ tokenizer: PythonTokenizer) -> Int {
        var depth = 0, commas = 0, content = false, lastWasComma = false
        for t in tokens[open...] {
            switch t.kind {
            case .newline, .comment, .continuation:
                continue
            case .op:
                switch tokenizer.text(of: t) {
                case "(", "[", "{":
                    depth += 1
                    if depth > 1 { content = true }
                case ")", "]", "}":
                    depth -= 1
                    if depth == 0 { return content ? commas + 1 - (lastWasComma ? 1 : 0) : 0 }
                case ",":
                    if depth == 1 {
                        commas += 1
                        lastWasComma = true
                        continue
                    }
                default:
                    if depth == 1 { content = true }
                }
            default:
                if depth == 1 { content = true }
            }
            lastWasComma = false
        }
        return content ? commas + 1 : 0
    }
}
