/// A small Python lexer that runs before tree-sitter.
///
/// tree-sitter alone cannot tell "unfinished" from "wrong": its error recovery
/// wraps an unfinished expression in an ERROR node exactly as it wraps a real
/// mistake, and the grammar is lenient about indentation. The lexer supplies
/// the facts the parser lacks:
/// - where the last *logical* line starts (outside brackets, strings and
///   backslash continuations), so only complete logical lines are judged
///   strictly;
/// - errors that no continuation can repair: a closer that does not match its
///   opener, a one-line string cut by a newline, a statement keyword inside
///   brackets, CPython's indentation rules (unexpected indent, a header whose
///   body is not indented, a dedent to an unknown level, tabs and spaces
///   mixed inconsistently).
///
/// Offsets are UTF-8 byte offsets, the unit tree-sitter uses.
struct LineLexer {
    struct Issue {
        var offset: Int
        var message: String
    }

    struct Result {
        /// Errors no continuation of the text can repair.
        var issues: [Issue] = []
        /// Start of the unfinished last logical line; equals the text length
        /// when the text ends on a logical line boundary.
        var completeEnd = 0
        /// End of the last significant token (comments and blanks excluded).
        var contentEnd = 0
        /// The text ends inside brackets, a string or after a backslash.
        var tailOpen = false
        /// The last complete logical line is a block header (`...:`) whose
        /// body has not started yet.
        var awaitingBlock = false
        /// The last complete logical line is a decorator still waiting for its `def`/`class`.
        var awaitingDefinition = false
        /// A `try` still waiting for its `except`/`finally`.
        var awaitingHandler = false
        /// Text to append to the complete lines before parsing them, so that
        /// constructs the grammar only accepts whole (a `try` without its
        /// handler, a decorator without its `def`) do not read as errors.
        var probe: [UInt8] = []
        /// Where the string left open at the end of the text starts.
        var openStringStart: Int?
        /// Open block depth at the end of the text.
        var indentDepth = 0
        var lineCount = 0
    }

    /// Keywords that start statements and can never appear inside brackets in
    /// valid Python 3; seeing one there means a bracket was left open by
    /// mistake (or a closer was deleted), not that the line is unfinished.
    static let statementKeywords: Set<String> = [
        "def", "class", "return", "import", "from", "while", "try", "except", "finally",
        "with", "pass", "break", "continue", "raise", "del", "global", "nonlocal", "assert", "elif",
    ]
    /// Of those, the ones that can only start a statement (after a line start,
    /// `;`, a one-line header's `:`, or `async`).
    static let statementStarters: Set<String> = [
        "def", "class", "return", "while", "try", "except", "finally", "with", "pass", "break",
        "continue", "raise", "del", "global", "nonlocal", "assert", "elif",
    ]
    /// Words that may start a line ending in `:` (a block header).
    static let headerStarters: Set<String> = [
        "if", "elif", "else", "for", "while", "try", "except", "finally", "with", "def", "class",
        "async", "match", "case",
    ]

    /// Operators after which a star cannot start an expression (`x * *y`).
    private static let binaryOperators: Set<Substring> = [
        "+", "-", "/", "%", "@", "<", ">", "&", "|", "^", "~", "*", "**", "//", "<<", ">>",
        "==", "!=", "<=", ">=", "->", "<<=", ">>=",
    ]

    static func scan(_ b: [UInt8]) -> Result {
        var r = Result()
        let n = b.count
        var brackets: [(byte: UInt8, offset: Int)] = []
        var logicalStart = 0
        var atLineStart = true
        var lineHasTokens = false
        var firstToken: UInt8 = 0
        var lastToken: UInt8 = 0
        var pendingHeader = false
        var pendingDecorator = false
        var firstWord = ""
        var lastWord = ""
        // For `x * *y`: a star right after a binary operator.
        var prevBinaryOp = false
        // Open `try` statements still waiting for a handler: indentation width and text.
        var tries: [(w8: Int, indent: ArraySlice<UInt8>)] = []
        var lastIndent: ArraySlice<UInt8> = []
        // The same facts as of the end of the last complete logical line.
        var completeTries = tries
        var completeDecorator = false
        // The previous logical line, to name a forgotten ':' for what it is.
        var previousFirstWord = ""
        var previousEnd = 0
        var decoratorIndent: ArraySlice<UInt8> = []
        var continuationAtEnd = false
        var stringOpenAtEnd = false
        // CPython compares indentation twice, tabs as 8 columns and as 1, and
        // rejects code where the two comparisons disagree (TabError).
        var indents: [(w8: Int, w1: Int)] = [(0, 0)]

        func token(_ first: UInt8, _ last: UInt8, end: Int, word: String = "", binaryOp: Bool = false) {
            if !lineHasTokens { firstToken = first; firstWord = word }
            lineHasTokens = true
            lastToken = last
            lastWord = word
            r.contentEnd = end
            prevBinaryOp = binaryOp
        }
        func issue(_ offset: Int, _ message: String) {
            r.issues.append(Issue(offset: offset, message: message))
        }

        var tokens = PythonTokenizer(b)
        while let t = tokens.next() {
            // Blank and comment-only lines do not take part in indentation.
            // Neither does a line still being typed at the end of the text
            // with nothing but blanks on it (it has no token).
            if atLineStart, t.kind != .newline, t.kind != .comment {
                atLineStart = false
                var w8 = 0, w1 = 0
                for c in b[logicalStart..<t.start] {
                    if c == 0x09 { w8 = (w8 / 8 + 1) * 8 } else if c == 0x20 { w8 += 1 } else { w8 = 0 }
                    w1 += c == 0x0C ? 0 : 1
                }
                let word = t.kind == .name ? String(decoding: b[t.start..<t.end], as: UTF8.self) : ""
                // A word cut by the end of the text may still grow (`exc` → `except`).
                while t.kind != .name || t.end < n, let last = tries.last, last.w8 >= w8 {
                    tries.removeLast()
                    if last.w8 == w8, word == "except" || word == "finally" { break }
                    issue(t.start, "expected 'except' or 'finally' block")
                }
                if word == "try" { tries.append((w8, b[logicalStart..<t.start])) }
                lastIndent = b[logicalStart..<t.start]
                let top = indents[indents.count - 1]
                if pendingHeader {
                    if w8 <= top.w8 {
                        issue(t.start, "expected an indented block")
                    } else if w1 <= top.w1 {
                        issue(t.start, "inconsistent use of tabs and spaces in indentation")
                    }
                    if w8 > top.w8 { indents.append((w8, w1)) }
                } else if w8 > top.w8 {
                    if headerStarters.contains(previousFirstWord), previousFirstWord != "match", previousFirstWord != "case" {
                        issue(previousEnd, "expected ':'")
                    } else {
                        issue(t.start, "unexpected indent")
                    }
                    indents.append((w8, w1))
                } else if w8 < top.w8 {
                    while indents.count > 1, indents[indents.count - 1].w8 > w8 { indents.removeLast() }
                    let now = indents[indents.count - 1]
                    if now.w8 != w8 {
                        issue(t.start, "unindent does not match any outer indentation level")
                    } else if now.w1 != w1 {
                        issue(t.start, "inconsistent use of tabs and spaces in indentation")
                    }
                } else if top.w1 != w1 {
                    issue(t.start, "inconsistent use of tabs and spaces in indentation")
                }
                pendingHeader = false
                pendingDecorator = false
            }
            let first = b[t.start], last = b[t.end - 1]
            switch t.kind {
            case .comment:
                break
            case .continuation:
                if t.end == n && last == 0x5C { continuationAtEnd = true }
            case .strayBackslash:
                issue(t.start, "unexpected character after line continuation character")
            case .newline:
                if brackets.isEmpty {
                    if lineHasTokens {
                        pendingHeader = lastToken == 0x3A  // ':'
                        pendingDecorator = firstToken == 0x40  // '@'
                        if pendingHeader, !headerStarters.contains(firstWord) {
                            issue(logicalStart, "':' ends a line that is not a block header")
                        }
                        completeTries = tries
                        completeDecorator = pendingDecorator
                        decoratorIndent = lastIndent
                        previousFirstWord = firstWord
                        previousEnd = r.contentEnd
                    }
                    lineHasTokens = false
                    logicalStart = t.end
                    atLineStart = true
                }
            case .string:
                stringOpenAtEnd = t.unterminated
                if t.unterminated { r.openStringStart = t.start }
                if t.cutByNewline { issue(t.start, "unterminated string literal") }
                token(first, 0x22, end: t.end)
            case .name:
                // A word cut by the end of the text may still grow (`pass` → `password`).
                let word = t.end - t.start <= 8 && t.end < n ? String(decoding: b[t.start..<t.end], as: UTF8.self) : ""
                if !brackets.isEmpty, statementKeywords.contains(word) {
                    let open = brackets[brackets.count - 1]
                    issue(t.start, "'\(word)' cannot appear inside '\(String(UnicodeScalar(open.byte)))'")
                } else if statementStarters.contains(word), lineHasTokens, lastToken != 0x3B, lastToken != 0x3A,
                          lastWord != "async" {
                    issue(t.start, "unexpected '\(word)': it can only start a statement")
                }
                token(first, last, end: t.end, word: word)
            case .number:
                token(first, last, end: t.end)
            case .op:
                switch first {
                case 0x28, 0x5B, 0x7B:  // ( [ {
                    brackets.append((first, t.start))
                    token(first, first, end: t.end)
                case 0x29, 0x5D, 0x7D:  // ) ] }
                    let want: UInt8 = first == 0x29 ? 0x28 : (first == 0x5D ? 0x5B : 0x7B)
                    let closer = String(UnicodeScalar(first))
                    if let open = brackets.last {
                        if open.byte != want {
                            issue(t.start, "closing '\(closer)' does not match '\(String(UnicodeScalar(open.byte)))'")
                        }
                        brackets.removeLast()
                    } else {
                        issue(t.start, "unmatched '\(closer)'")
                    }
                    token(first, first, end: t.end)
                default:
                    let text = Substring(decoding: b[t.start..<t.end], as: UTF8.self)
                    // A star expression right after a binary operator is never valid.
                    if text == "*" || text == "**", prevBinaryOp, lineHasTokens {
                        issue(t.start, "unexpected '*' after an operator")
                    }
                    token(first, last, end: t.end, binaryOp: Self.binaryOperators.contains(text))
                }
            }
        }

        var newlines = 0
        for c in b where c == 0x0A { newlines += 1 }
        r.lineCount = newlines + ((n > 0 && b[n - 1] != 0x0A) ? 1 : 0)
        r.tailOpen = !brackets.isEmpty || continuationAtEnd || stringOpenAtEnd
        if lineHasTokens || r.tailOpen {
            r.completeEnd = logicalStart
        } else {
            r.completeEnd = n
        }
        // A last line without its newline counts as written so far.
        r.awaitingBlock = lineHasTokens ? lastToken == 0x3A : pendingHeader
        r.awaitingDefinition = lineHasTokens ? firstToken == 0x40 : pendingDecorator
        r.indentDepth = indents.count - 1 + (r.awaitingBlock ? 1 : 0)
        r.awaitingHandler = !tries.isEmpty
        // Probe the complete lines: close a pending decorator with a def, then
        // every open try (innermost first) with a finally at its indentation.
        if completeDecorator || !completeTries.isEmpty {
            r.probe = Array("\n".utf8)
            if completeDecorator { r.probe += decoratorIndent + Array("def _(): pass\n".utf8) }
            for t in completeTries.reversed() { r.probe += t.indent + Array("finally: pass\n".utf8) }
        }
        return r
    }
}
