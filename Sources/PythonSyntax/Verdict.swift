/// The rule that turns lexer and tree facts into a verdict.
///
/// - Anything the lexer proves wrong is `broken`.
/// - The complete logical lines must parse clean: the parser's error recovery
///   there means a real mistake, since nothing later can change how a finished
///   line parses.
/// - In the unfinished last logical line, an error followed by more text is
///   `broken` (the text after the error did not repair it), an error reaching
///   the end is `incomplete` (the next token might).
/// - A clean text is `valid` unless a block header or decorator still waits
///   for its body.
enum Verdict {
    static func report(bytes: [UInt8], lex: LineLexer.Result, full: TreeFacts, complete: TreeFacts) -> SyntaxReport {
        var found: [(offset: Int, message: String)] = lex.issues.map { ($0.offset, $0.message) }
        // The lexer's issues are precise; a tree error spanning one of them is
        // its echo (`return x)` around the stray `)`), so it is left out.
        let lexerOffsets = found.map(\.offset)
        for e in complete.errors where !lexerOffsets.contains(where: { e.start <= $0 && $0 <= e.end }) {
            found.append((e.start, message(e, bytes)))
        }
        let verdict: SyntaxVerdict
        let awaiting = lex.awaitingBlock || lex.awaitingDefinition || lex.awaitingHandler
        if !found.isEmpty {
            verdict = .broken
        } else if lex.completeEnd == bytes.count {
            verdict = awaiting ? .incomplete : .valid
        } else {
            let tail = full.errors.filter { $0.end > lex.completeEnd }
            // Text inside a string left open at the end cannot repair anything before it.
            let repairFrom = min(lex.contentEnd, lex.openStringStart ?? lex.contentEnd)
            let followed = tail.filter { $0.end < repairFrom }
            if !followed.isEmpty {
                verdict = .broken
                found = followed.map { ($0.start, message($0, bytes)) }
            } else if !tail.isEmpty || lex.tailOpen || awaiting {
                verdict = .incomplete
            } else {
                verdict = .valid
            }
        }
        var issues: [SyntaxIssue] = []
        if verdict == .broken {
            let lines = LineIndex(bytes)
            var seen = Set<Int>()
            for f in found.sorted(by: { $0.offset < $1.offset }) where seen.insert(f.offset).inserted {
                let (line, column) = lines.position(f.offset)
                issues.append(SyntaxIssue(line: line, column: column, message: f.message))
            }
        }
        let functions = full.errors.isEmpty ? full.functions : complete.functions
        return SyntaxReport(verdict: verdict, issues: issues, functions: functions,
                            indentDepth: lex.indentDepth, lineCount: lex.lineCount)
    }

    static func message(_ e: TreeFacts.ErrorNode, _ bytes: [UInt8]) -> String {
        if e.missing { return "missing '\(e.type)'" }
        var end = min(e.end, bytes.count, e.start + 24)
        if let nl = bytes[e.start..<end].firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) { end = nl }
        let snippet = String(decoding: bytes[e.start..<end], as: UTF8.self).trimmingSpaces()
        return snippet.isEmpty ? "syntax error" : "syntax error near `\(snippet)`"
    }
}

/// Byte offset to 1-based (line, column in Unicode scalars).
struct LineIndex {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func position(_ offset: Int) -> (Int, Int) {
        var line = 1, lineStart = 0
        let stop = min(offset, bytes.count)
        for i in 0..<stop where bytes[i] == 0x0A {
            line += 1
            lineStart = i + 1
        }
        var column = 1
        for i in lineStart..<stop where bytes[i] & 0xC0 != 0x80 { column += 1 }
        return (line, column)
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}
