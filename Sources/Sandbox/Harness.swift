/// The Python harness that runs inside the jail (`python3 -I -S -B -c <source>`).
///
/// Protocol (see sandbox/README.md): the job arrives as one JSON object on fd 0
/// (`nonce`, `program`, `tests`, `setup`); the harness reads it, points fd 0 at
/// /dev/null, and from then on the nonce exists only in its own closure. Every
/// record goes to fd 3 as one JSON line carrying the nonce, so lines printed or
/// written by the program itself are ignored, and an early exit leaves asserts
/// without records instead of faking a pass. The `plan` record is written before
/// any untrusted code runs, so the expected asserts come from the harness alone.
/// Records written after untrusted code ran avoid `json` and anything the
/// program could monkeypatch: they use only references captured up front.
enum Harness {
    static let source = #"""
def _qcode_harness():
    import os, sys, ast, json, builtins
    _write, _translate, _type, _str, _repr, _len = os.write, str.translate, type, str, repr, len
    _BaseException, _AssertionError, _SystemExit = BaseException, AssertionError, SystemExit
    raw = b""
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        raw += chunk
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    job = json.loads(raw.decode("utf-8"))
    del raw
    nonce = job["nonce"]
    table = {i: "\\u%04x" % i for i in range(32)}
    table[34] = '\\"'
    table[92] = "\\\\"
    head = '{"nonce":"' + nonce + '",'

    def text(value, limit=1000):
        # value is produced by the harness's own str()/repr(); slice then escape.
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

    program, tests, setup = job["program"], job["tests"], job.get("setup", "")
    try:
        prog_code = compile(program, "<solution>", "exec")
    except SyntaxError as e:
        emit('"kind":"syntax","line":%d,"message":%s' % (e.lineno or 0, text("%s: %s" % (type(e).__name__, e.msg))))
        return
    try:
        tree = ast.parse(tests, "<tests>")
        setup_code = compile(setup, "<setup>", "exec")
    except SyntaxError as e:
        emit('"kind":"harness_error","message":%s' % text("the test file or setup code does not compile: line %s: %s" % (e.lineno, e.msg)))
        return

    steps = []
    plan = []
    for node in tree.body:
        src = ast.get_source_segment(tests, node) or ""
        is_assert = isinstance(node, ast.Assert)
        if is_assert:
            test = node.test
            if isinstance(test, ast.Compare) and len(test.ops) == 1 and node.msg is None:
                # Evaluate both sides once, so a failure can say what was returned.
                pre = ast.parse("__qcode_l = 0\n__qcode_r = 0").body
                pre[0].value, pre[1].value = test.left, test.comparators[0]
                check = ast.Assert(test=ast.Compare(left=ast.Name("__qcode_l", ast.Load()), ops=test.ops,
                                                    comparators=[ast.Name("__qcode_r", ast.Load())]), msg=None)
                body = pre + [check]
                for n in body:
                    ast.copy_location(n, node)
                mod = ast.Module(body=body, type_ignores=[])
                ast.fix_missing_locations(mod)
                compare = True
            else:
                mod = ast.Module(body=[node], type_ignores=[])
                compare = False
            code = compile(mod, "<tests>", "exec")
            plan.append({"index": len(plan), "line": node.lineno, "source": src[:500]})
            steps.append((True, len(plan) - 1, node.lineno, code, compare))
        else:
            steps.append((False, -1, node.lineno, compile(ast.Module(body=[node], type_ignores=[]), "<tests>", "exec"), False))
    emit('"kind":"plan","asserts":' + json.dumps(plan))
    del job, program, tests, setup, tree, plan

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
