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

    private static func isIdentStart(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == 0x5F || c >= 0x80
    }
    private static func isIdentChar(_ c: UInt8) -> Bool {
        isIdentStart(c) || (c >= 0x30 && c <= 0x39)
    }
    private static func isStringPrefix(_ word: ArraySlice<UInt8>) -> Bool {
        guard word.count <= 2 else { return false }
        let lower = String(decoding: word, as: UTF8.self).lowercased()
        return ["r", "u", "b", "f", "br", "rb", "fr", "rf"].contains(lower)
    }

    static func scan(_ b: [UInt8]) -> Result {
        var r = Result()
        let n = b.count
        var i = 0
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
        var prevEnd = -1
        var prevByte: UInt8 = 0
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
            prevEnd = end
            prevByte = last
        }
        func issue(_ offset: Int, _ message: String) {
            r.issues.append(Issue(offset: offset, message: message))
        }

        while i < n {
            if atLineStart {
                atLineStart = false
                var j = i, w8 = 0, w1 = 0
                while j < n, b[j] == 0x20 || b[j] == 0x09 || b[j] == 0x0C {
                    if b[j] == 0x09 { w8 = (w8 / 8 + 1) * 8 } else if b[j] == 0x20 { w8 += 1 } else { w8 = 0 }
                    w1 += b[j] == 0x0C ? 0 : 1
                    j += 1
                }
                // Blank and comment-only lines do not take part in indentation.
                // Neither does a line still being typed at the end of the text
                // with nothing but blanks on it.
                if j < n, b[j] != 0x0A, b[j] != 0x0D, b[j] != 0x23 {
                    var k = j
                    while k < n, isIdentChar(b[k]) { k += 1 }
                    let word = String(decoding: b[j..<k], as: UTF8.self)
                    // A word cut by the end of the text may still grow (`exc` → `except`).
                    while k < n, let t = tries.last, t.w8 >= w8 {
                        tries.removeLast()
                        if t.w8 == w8, word == "except" || word == "finally" { break }
                        issue(j, "expected 'except' or 'finally' block")
                    }
                    if word == "try" { tries.append((w8, b[i..<j])) }
                    lastIndent = b[i..<j]
                    let top = indents[indents.count - 1]
                    if pendingHeader {
                        if w8 <= top.w8 {
                            issue(j, "expected an indented block")
                        } else if w1 <= top.w1 {
                            issue(j, "inconsistent use of tabs and spaces in indentation")
                        }
                        if w8 > top.w8 { indents.append((w8, w1)) }
                    } else if w8 > top.w8 {
                        if headerStarters.contains(previousFirstWord), previousFirstWord != "match", previousFirstWord != "case" {
                            issue(previousEnd, "expected ':'")
                        } else {
                            issue(j, "unexpected indent")
                        }
                        indents.append((w8, w1))
                    } else if w8 < top.w8 {
                        while indents.count > 1, indents[indents.count - 1].w8 > w8 { indents.removeLast() }
                        let now = indents[indents.count - 1]
                        if now.w8 != w8 {
                            issue(j, "unindent does not match any outer indentation level")
                        } else if now.w1 != w1 {
                            issue(j, "inconsistent use of tabs and spaces in indentation")
                        }
                    } else if top.w1 != w1 {
                        issue(j, "inconsistent use of tabs and spaces in indentation")
                    }
                    pendingHeader = false
                    pendingDecorator = false
                }
                i = j
                continue
            }
            let c = b[i]
            switch c {
            case 0x20, 0x09, 0x0C:
                i += 1
            case 0x23:  // '#': comment to the end of the physical line
                while i < n, b[i] != 0x0A, b[i] != 0x0D { i += 1 }
            case 0x5C:  // '\': line continuation
                if i + 1 == n {
                    continuationAtEnd = true
                    i += 1
                } else if b[i + 1] == 0x0A {
                    i += 2
                } else if b[i + 1] == 0x0D {
                    i += (i + 2 < n && b[i + 2] == 0x0A) ? 3 : 2
                } else {
                    issue(i, "unexpected character after line continuation character")
                    i += 1
                }
            case 0x0A, 0x0D:
                i += (c == 0x0D && i + 1 < n && b[i + 1] == 0x0A) ? 2 : 1
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
                    logicalStart = i
                    atLineStart = true
                }
            case 0x28, 0x5B, 0x7B:  // ( [ {
                brackets.append((c, i))
                token(c, c, end: i + 1)
                i += 1
            case 0x29, 0x5D, 0x7D:  // ) ] }
                let want: UInt8 = c == 0x29 ? 0x28 : (c == 0x5D ? 0x5B : 0x7B)
                let closer = String(UnicodeScalar(c))
                if let open = brackets.last {
                    if open.byte != want {
                        issue(i, "closing '\(closer)' does not match '\(String(UnicodeScalar(open.byte)))'")
                    }
                    brackets.removeLast()
                } else {
                    issue(i, "unmatched '\(closer)'")
                }
                token(c, c, end: i + 1)
                i += 1
            case 0x22, 0x27:  // " '
                let (end, open) = scanString(b, from: i, quoteAt: i, into: &r)
                stringOpenAtEnd = open
                if open { r.openStringStart = i }
                token(c, c, end: end)
                i = end
            default:
                if isIdentStart(c) {
                    var j = i + 1
                    while j < n, isIdentChar(b[j]) { j += 1 }
                    if j < n, b[j] == 0x22 || b[j] == 0x27, isStringPrefix(b[i..<j]) {
                        let (end, open) = scanString(b, from: i, quoteAt: j, into: &r)
                        stringOpenAtEnd = open
                        if open { r.openStringStart = i }
                        token(c, b[j], end: end)
                        i = end
                    } else {
                        // A word cut by the end of the text may still grow (`pass` → `password`).
                        let word = j - i <= 8 && j < n ? String(decoding: b[i..<j], as: UTF8.self) : ""
                        if !brackets.isEmpty, statementKeywords.contains(word) {
                            let open = brackets[brackets.count - 1]
                            issue(i, "'\(word)' cannot appear inside '\(String(UnicodeScalar(open.byte)))'")
                        } else if statementStarters.contains(word), lineHasTokens, lastToken != 0x3B, lastToken != 0x3A,
                                  lastWord != "async" {
                            issue(i, "unexpected '\(word)': it can only start a statement")
                        }
                        token(c, b[j - 1], end: j, word: word)
                        i = j
                    }
                } else {
                    let adjacent = prevEnd == i
                    var binary = false
                    switch c {
                    case 0x2A:  // '*': a star expression right after a binary operator is never valid
                        if !(adjacent && prevByte == 0x2A), prevBinaryOp, lineHasTokens {
                            issue(i, "unexpected '*' after an operator")
                        }
                        binary = true
                    case 0x2B, 0x2D, 0x2F, 0x25, 0x40, 0x3C, 0x3E, 0x26, 0x7C, 0x5E, 0x7E:  // + - / % @ < > & | ^ ~
                        binary = true
                    case 0x3D:  // '=': only ==, <=, >=, != compare
                        binary = adjacent && (prevByte == 0x3D || prevByte == 0x21 || prevByte == 0x3C || prevByte == 0x3E)
                    default:
                        break
                    }
                    token(c, c, end: i + 1, binaryOp: binary)
                    i += 1
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

    /// Scans a string literal whose opening quote is at `q`; returns the end
    /// offset and whether the text ended inside it. A one-line string cut by a
    /// newline is an issue (CPython rejects it whatever follows); one cut by
    /// the end of the text is merely unfinished.
    private static func scanString(_ b: [UInt8], from start: Int, quoteAt q: Int, into r: inout Result) -> (Int, Bool) {
        let n = b.count
        let quote = b[q]
        let triple = q + 2 < n && b[q + 1] == quote && b[q + 2] == quote
        var i = q + (triple ? 3 : 1)
        while i < n {
            let c = b[i]
            if c == 0x5C {  // backslash escapes the next byte (also in raw strings, for termination)
                i += 2
                continue
            }
            if !triple, c == 0x0A || c == 0x0D {
                r.issues.append(Issue(offset: start, message: "unterminated string literal"))
                return (i, false)
            }
            if c == quote {
                if !triple { return (i + 1, false) }
                if i + 2 < n, b[i + 1] == quote, b[i + 2] == quote { return (i + 3, false) }
            }
            i += 1
        }
        return (n, true)
    }
}
