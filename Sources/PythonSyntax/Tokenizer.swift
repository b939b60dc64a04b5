/// One Python token, located by UTF-8 byte offsets (tree-sitter's unit).
public struct PythonToken: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// An identifier or keyword.
        case name
        case number
        /// A string literal with its prefix (`r'…'`, `f"""…"""`).
        case string
        /// An operator or delimiter, multi-character ones whole (`**=`, `->`, `==`).
        case op
        /// `#` to the end of the physical line.
        case comment
        /// A line break (`\n`, `\r\n` or `\r`); inside brackets too — callers decide what it means.
        case newline
        /// A backslash continuation: `\` and the line break after it, or a `\` at the end of the text.
        case continuation
        /// A backslash followed by something other than a line break.
        case strayBackslash
    }

    public var kind: Kind
    public var start: Int
    public var end: Int
    /// A string the text ended inside: it may still be closed.
    public var unterminated = false
    /// A one-line string cut by a line break: CPython rejects it whatever follows.
    public var cutByNewline = false

    public init(kind: Kind, start: Int, end: Int, unterminated: Bool = false, cutByNewline: Bool = false) {
        self.kind = kind
        self.start = start
        self.end = end
        self.unterminated = unterminated
        self.cutByNewline = cutByNewline
    }
}

/// Splits Python source into tokens. It never fails: unfinished strings,
/// stray characters and bad continuations become tokens the caller can judge,
/// because qcode tokenizes partial programs, single test lines and candidate
/// lines as well as whole files.
///
/// One tokenizer serves the process reward's lexer, entry-point detection,
/// test-file splitting and the QVM's features, so they agree on what a
/// string, a name and a comment are.
public struct PythonTokenizer: Sequence, IteratorProtocol {
    public let bytes: [UInt8]
    private var i = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init(_ text: String) { self.bytes = Array(text.utf8) }

    /// All tokens of `text`.
    public static func tokens(_ text: String) -> [PythonToken] { Array(PythonTokenizer(text)) }

    public func text(of token: PythonToken) -> Substring {
        Substring(decoding: bytes[token.start..<token.end], as: UTF8.self)
    }

    public static func isIdentifierStart(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == 0x5F || c >= 0x80
    }
    public static func isIdentifierByte(_ c: UInt8) -> Bool {
        isIdentifierStart(c) || (c >= 0x30 && c <= 0x39)
    }
    private static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// The prefixes CPython accepts before a quote, in any case.
    static func isStringPrefix(_ word: ArraySlice<UInt8>) -> Bool {
        switch word.count {
        case 1:
            let c = word.first! | 0x20
            return c == 0x72 || c == 0x75 || c == 0x62 || c == 0x66  // r u b f
        case 2:
            let a = word.first! | 0x20, b = word.last! | 0x20
            let pair = (a, b)
            return pair == (0x62, 0x72) || pair == (0x72, 0x62) || pair == (0x66, 0x72) || pair == (0x72, 0x66)
        default:
            return false
        }
    }

    /// Three-, then two-character operators, longest first.
    private static let threeCharOps: [[UInt8]] = ["**=", "//=", ">>=", "<<=", "..."].map { Array($0.utf8) }
    private static let twoCharOps: Set<UInt16> = Set(
        ["==", "!=", "<=", ">=", "//", "**", "<<", ">>", "->", ":=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@="]
            .map { s in let u = Array(s.utf8); return UInt16(u[0]) << 8 | UInt16(u[1]) })

    public mutating func next() -> PythonToken? {
        let b = bytes, n = b.count
        while i < n, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0C { i += 1 }
        guard i < n else { return nil }
        let start = i
        let c = b[i]
        switch c {
        case 0x23:  // '#'
            while i < n, b[i] != 0x0A, b[i] != 0x0D { i += 1 }
            return PythonToken(kind: .comment, start: start, end: i)
        case 0x0A:
            i += 1
            return PythonToken(kind: .newline, start: start, end: i)
        case 0x0D:
            i += (i + 1 < n && b[i + 1] == 0x0A) ? 2 : 1
            return PythonToken(kind: .newline, start: start, end: i)
        case 0x5C:  // '\'
            if i + 1 == n {
                i += 1
                return PythonToken(kind: .continuation, start: start, end: i)
            }
            if b[i + 1] == 0x0A {
                i += 2
                return PythonToken(kind: .continuation, start: start, end: i)
            }
            if b[i + 1] == 0x0D {
                i += (i + 2 < n && b[i + 2] == 0x0A) ? 3 : 2
                return PythonToken(kind: .continuation, start: start, end: i)
            }
            i += 1
            return PythonToken(kind: .strayBackslash, start: start, end: i)
        case 0x22, 0x27:
            return string(from: start, quoteAt: i)
        default:
            break
        }
        if Self.isIdentifierStart(c) {
            var j = i + 1
            while j < n, Self.isIdentifierByte(b[j]) { j += 1 }
            if j < n, b[j] == 0x22 || b[j] == 0x27, Self.isStringPrefix(b[i..<j]) {
                return string(from: start, quoteAt: j)
            }
            i = j
            return PythonToken(kind: .name, start: start, end: j)
        }
        if Self.isDigit(c) || (c == 0x2E && i + 1 < n && Self.isDigit(b[i + 1])) {
            var j = i + 1
            while j < n {
                let d = b[j]
                if Self.isIdentifierByte(d) || d == 0x2E {
                    j += 1
                } else if (d == 0x2B || d == 0x2D), (b[j - 1] | 0x20) == 0x65, !(b[start] == 0x30 && j > start + 1 && (b[start + 1] | 0x20) == 0x78) {
                    j += 1  // the sign of an exponent: 1e-5 (not in hex literals)
                } else {
                    break
                }
            }
            i = j
            return PythonToken(kind: .number, start: start, end: j)
        }
        if i + 2 < n, Self.threeCharOps.contains(where: { $0[0] == c && $0[1] == b[i + 1] && $0[2] == b[i + 2] }) {
            i += 3
        } else if i + 1 < n, Self.twoCharOps.contains(UInt16(c) << 8 | UInt16(b[i + 1])) {
            i += 2
        } else {
            i += 1
        }
        return PythonToken(kind: .op, start: start, end: i)
    }

    /// A string literal whose opening quote is at `q` (its prefix starts at `start`).
    private mutating func string(from start: Int, quoteAt q: Int) -> PythonToken {
        let b = bytes, n = b.count
        let quote = b[q]
        let triple = q + 2 < n && b[q + 1] == quote && b[q + 2] == quote
        var j = q + (triple ? 3 : 1)
        while j < n {
            let c = b[j]
            if c == 0x5C {  // a backslash escapes the next byte (for termination, in raw strings too)
                j += 2
                continue
            }
            if !triple, c == 0x0A || c == 0x0D {
                i = j
                return PythonToken(kind: .string, start: start, end: j, cutByNewline: true)
            }
            if c == quote {
                if !triple {
                    i = j + 1
                    return PythonToken(kind: .string, start: start, end: i)
                }
                if j + 2 < n, b[j + 1] == quote, b[j + 2] == quote {
                    i = j + 3
                    return PythonToken(kind: .string, start: start, end: i)
                }
            }
            j += 1
        }
        i = n
        return PythonToken(kind: .string, start: start, end: n, unterminated: true)
    }
}

extension PythonTokenizer {
    /// The code tokens of `text` (comments, line breaks and continuations left
    /// out), each with its text as a slice of `text` itself: cheap enough for
    /// the value model, which tokenizes every candidate line.
    public static func codeTokens(_ text: String) -> [(kind: PythonToken.Kind, text: Substring)] {
        let utf8 = text.utf8
        var out: [(kind: PythonToken.Kind, text: Substring)] = []
        for t in PythonTokenizer(Array(utf8)) {
            switch t.kind {
            case .comment, .newline, .continuation, .strayBackslash: continue
            default:
                let lo = utf8.index(utf8.startIndex, offsetBy: t.start)
                let hi = utf8.index(lo, offsetBy: t.end - t.start)
                out.append((t.kind, text[lo..<hi]))
            }
        }
        return out
    }
}
