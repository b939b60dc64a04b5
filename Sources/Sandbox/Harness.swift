import Foundation

/// The Python harness that runs inside the jail (`python3 -I -S -B -c <source>`).
///
/// Protocol (see sandbox/README.md): the job arrives on fd 0 as `<nonce>\n<len> <len> <len>\n`
/// followed by program, tests and setup (UTF-8); the harness reads it, points fd 0 at
/// /dev/null, and from then on the nonce exists only in its own closure. Every
/// record goes to fd 3 as one JSON line carrying the nonce, so lines printed or
/// written by the program itself are ignored, and an early exit leaves asserts
/// without records instead of faking a pass. The `plan` record is written before
/// any untrusted code runs, so the expected asserts come from the harness alone.
/// Records are built without `json` from references captured up front, so a
/// program that monkeypatches modules or builtins cannot intercept the nonce.
enum Harness {
    /// The job as the harness reads it on fd 0.
    static func frame(nonce: String, job: JailJob) -> Data {
        let p = Data(job.program.utf8), t = Data(job.tests.utf8), s = Data(job.setup.utf8)
        return Data("\(nonce)\n\(p.count) \(t.count) \(s.count)\n".utf8) + p + t + s
    }

    static let source = #"""
def _qcode_harness():
    # Only builtin modules (posix, _ast, builtins): importing ast/json/os would
    # triple the cost of a trivial run.
    import posix, _ast, builtins
    _write, _translate, _type, _str, _repr = posix.write, str.translate, type, str, repr
    _BaseException, _AssertionError = BaseException, AssertionError
    chunks = []
    while True:
        chunk = posix.read(0, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    null = posix.open("/dev/null", posix.O_RDONLY)
    posix.dup2(null, 0)
    posix.close(null)
    raw = b"".join(chunks)
    del chunks
    # Job framing: "<nonce>\n<len program> <len tests> <len setup>\n" + the three UTF-8 texts.
    nl1 = raw.index(b"\n")
    nl2 = raw.index(b"\n", nl1 + 1)
    nonce = raw[:nl1].decode("ascii")
    lp, lt, ls = (int(x) for x in raw[nl1 + 1:nl2].split())
    o = nl2 + 1
    program = raw[o:o + lp].decode("utf-8")
    tests = raw[o + lp:o + lp + lt].decode("utf-8")
    setup = raw[o + lp + lt:o + lp + lt + ls].decode("utf-8")
    del raw
    table = {i: "\\u%04x" % i for i in range(32)}
    table[34] = '\\"'
    table[92] = "\\\\"
    head = '{"nonce":"' + nonce + '",'

    def text(value, limit=1000):
        s = value if _type(value) is _str else _str.__str__(value)
        return '"' + _translate(s[:limit], table) + '"'

    def emit(body):
        data = (head + body + "}\n").encode("utf-8", "replace")
        try:
            _write(3, data)
        except OSError:
            pass

    def describe(exc):
        try:
            msg = _str(exc)
        except _BaseException:
            msg = "<unprintable %s>" % _type(exc).__name__
        name = _type(exc).__name__
        return text(name if _type(name) is _str else "?", 200), text(msg)

    def line_of(exc, default):
        tb = exc.__traceback__
        line = default
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<solution>":
                line = tb.tb_lineno
            tb = tb.tb_next
        return line

    ONLY_AST = 0x400
    try:
        prog_code = compile(program, "<solution>", "exec")
    except SyntaxError as e:
        emit('"kind":"syntax","line":%d,"message":%s' % (e.lineno or 0, text("%s: %s" % (type(e).__name__, e.msg))))
        return
    try:
        tree = compile(tests, "<tests>", "exec", ONLY_AST)
        setup_code = compile(setup, "<setup>", "exec")
    except SyntaxError as e:
        emit('"kind":"harness_error","message":%s' % text("the test file or setup code does not compile: line %s: %s" % (e.lineno, e.msg)))
        return

    lines = tests.split("\n")

    def segment(n):
        # Offsets are UTF-8 byte columns, as in ast.get_source_segment.
        first, last = n.lineno - 1, n.end_lineno - 1
        if first == last:
            return lines[first].encode()[n.col_offset:n.end_col_offset].decode("utf-8", "replace")
        parts = [lines[first].encode()[n.col_offset:].decode("utf-8", "replace")]
        parts += lines[first + 1:last]
        parts.append(lines[last].encode()[:n.end_col_offset].decode("utf-8", "replace"))
        return "\n".join(parts)

    def place(n, at):
        n.lineno, n.col_offset, n.end_lineno, n.end_col_offset = at.lineno, at.col_offset, at.end_lineno, at.end_col_offset

    steps = []
    plan = []
    for node in tree.body:
        if _type(node) is _ast.Assert:
            test = node.test
            compare = _type(test) is _ast.Compare and len(test.ops) == 1 and node.msg is None
            if compare:
                # Evaluate both sides once, so a failure can say what was returned.
                pre = compile("__qcode_l = 0\n__qcode_r = 0\nassert __qcode_l == __qcode_r", "<tests>", "exec", ONLY_AST)
                a, b, check = pre.body
                a.value, b.value = test.left, test.comparators[0]
                check.test.ops = test.ops
                for n in (a, a.targets[0], b, b.targets[0], check, check.test, check.test.left, check.test.comparators[0]):
                    place(n, node)
                mod = pre
            else:
                mod = _ast.Module(body=[node], type_ignores=[])
            code = compile(mod, "<tests>", "exec")
            index = len(plan)
            plan.append('{"index":%d,"line":%d,"source":%s}' % (index, node.lineno, text(segment(node), 500)))
            steps.append((True, index, node.lineno, code, compare))
        else:
            steps.append((False, -1, node.lineno, compile(_ast.Module(body=[node], type_ignores=[]), "<tests>", "exec"), False))
    emit('"kind":"plan","asserts":[' + ",".join(plan) + "]")
    del program, tests, setup, tree, plan, lines

    g = {"__name__": "__main__", "__builtins__": builtins}
    for code, where in ((setup_code, "setup"), (prog_code, "program")):
        try:
            exec(code, g)
        except _BaseException as e:
            t, m = describe(e)
            emit('"kind":"program_error","where":"%s","line":%d,"exc_type":%s,"message":%s' % (where, line_of(e, 0), t, m))
            return
    done = 0
    for is_assert, index, line, code, compare in steps:
        try:
            exec(code, g)
            if is_assert:
                emit('"kind":"assert","index":%d,"line":%d,"passed":true' % (index, line))
                done += 1
        except _BaseException as e:
            t, m = describe(e)
            if compare and _type(e) is _AssertionError:
                try:
                    got, want = _repr(g.get("__qcode_l")), _repr(g.get("__qcode_r"))
                    m = text("got %s, expected %s" % (got[:300], want[:300]))
                except _BaseException:
                    pass
            if is_assert:
                emit('"kind":"assert","index":%d,"line":%d,"passed":false,"exc_type":%s,"message":%s' % (index, line, t, m))
                done += 1
            else:
                emit('"kind":"stmt","line":%d,"passed":false,"exc_type":%s,"message":%s' % (line, t, m))
    emit('"kind":"done","count":%d' % done)

_qcode_harness()
del _qcode_harness
try:
    import sys as _s
    _s.stdout.flush()
    _s.stderr.flush()
except BaseException:
    pass
"""#
}
