import CodeDomain
import Foundation
import PythonSyntax

/// Where the editor's stubs are, and how qcode's answer goes back into a buffer
/// that may have changed while the search ran.
public enum EditorStubs {
    /// The function at `position` whose body is a stub (empty, `...`, `pass`,
    /// `raise NotImplementedError`): the innermost definition whose lines,
    /// decorators to last statement, hold the position. Nil elsewhere, and on a
    /// function that already has a body.
    public static func stub(at position: Position, in text: String) -> FunctionSite? {
        guard let outline = try? ModuleOutline.read(text) else { return nil }
        let bytes = Array(text.utf8)
        let offset = TextEdit.offset(of: Position(line: position.line, character: 0), in: bytes)
        func lineStart(_ i: Int) -> Int {
            var j = min(i, bytes.count)
            while j > 0, bytes[j - 1] != 0x0A { j -= 1 }
            return j
        }
        func lineEnd(_ i: Int) -> Int {
            var j = min(i, bytes.count)
            while j < bytes.count, bytes[j] != 0x0A { j += 1 }
            return j
        }
        let holding = outline.functions.filter { lineStart($0.start) <= offset && offset <= lineEnd($0.end) }
        guard let innermost = holding.max(by: { $0.start < $1.start }), innermost.isStub else { return nil }
        return innermost
    }

    /// Why qcode's answer cannot go into the document as it is now.
    public enum Conflict: Error, Sendable, Equatable {
        /// The function itself changed (or no longer parses) since the search started.
        case functionChanged
    }

    /// The edit that writes `program`'s new body into `current`, the document as
    /// it is when the search ends. `stub` is the function as it was when the
    /// search started, and `program` the module then with the body written.
    ///
    /// When only other parts of the module changed, the body still goes in (the
    /// user kept typing elsewhere: nothing of theirs is overwritten); when the
    /// function's own text changed, nothing does.
    public static func edit(stub: StubContext, program: String, current: String) throws(Conflict) -> TextEdit {
        if current == stub.source { return TextEdit.lines(from: current, to: program) }
        let written = Array(program.utf8), head = Array(stub.head.utf8), tail = Array(stub.tail.utf8)
        guard written.count >= head.count + tail.count, written.starts(with: head), written.reversed().starts(with: tail.reversed())
        else { throw .functionChanged }
        let body = written[head.count..<(written.count - tail.count)]
        guard let now = (try? StubTasks.load(source: current, function: stub.function))?.stub,
              functionText(now) == functionText(stub) else { throw .functionChanged }
        let rebased = String(decoding: Array(now.head.utf8) + body + Array(now.tail.utf8), as: UTF8.self)
        return TextEdit.lines(from: current, to: rebased)
    }

    /// The function as the module has it: decorators, header, docstring and stub body.
    static func functionText(_ stub: StubContext) -> ArraySlice<UInt8> {
        let source = Array(stub.source.utf8)
        let end = source.count - stub.tail.utf8.count
        guard stub.functionStart <= end else { return [] }
        return source[stub.functionStart..<end]
    }
}
