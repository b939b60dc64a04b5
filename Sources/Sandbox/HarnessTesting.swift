/// The judge's test vocabulary beyond top-level asserts: a small `pytest` (marks,
/// `parametrize`, fixtures, `raises`, `approx`, `skip`, `fail`) and doctest's example
/// syntax and output comparison. Judge-only: the program's process never loads it.
///
/// Why not the real modules: pytest is not installed on most hosts and would be a
/// dependency inside the jail; `doctest` imports pdb, unittest and difflib (~150 ms per
/// run on this machine) for the thirty lines that parse examples and compare output,
/// which are reproduced here with doctest's own rules. Everything here runs in the
/// judge on values it rebuilt itself, so `approx` and `raises` decide nothing the
/// program could steer.
extension Harness {
    static let testing = #"""
REF_TYPE = [None]  # the judge's Ref class, once it exists


class Skipped(BaseException):
    """pytest.skip(): the test stops and counts as skipped (not a failure)."""


class Failed(BaseException):
    """pytest.fail() and a `raises` block that raised nothing."""


class MarkDecorator:
    __slots__ = ("name", "args", "kwargs")

    def __init__(self, name, args=(), kwargs=None):
        self.name, self.args, self.kwargs = name, args, kwargs or {}

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and (type(args[0]) is type or hasattr(args[0], "__code__")) \
                and (self.args or self.kwargs or self.name not in ("parametrize", "skipif")):
            target = args[0]
            marks = target.__dict__.get("qcode_marks") if type(target) is type else getattr(target, "qcode_marks", None)
            if marks is None:
                marks = []
                setattr(target, "qcode_marks", marks)
            marks.insert(0, self)  # decorators apply bottom-up; keep them top-down
            return target
        return MarkDecorator(self.name, args, kwargs)


class MarkGenerator:
    def __getattr__(self, name):
        if name[:1] == "_":
            raise AttributeError(name)
        return MarkDecorator(name)


class ParameterSet:
    __slots__ = ("values", "marks", "id")

    def __init__(self, values, marks, id):
        self.values, self.marks, self.id = values, marks, id


def param(*values, marks=(), id=None):
    return ParameterSet(values, list(marks) if type(marks) in (list, tuple) else [marks], id)


def fixture(fn=None, *, scope="function", params=None, autouse=False, ids=None, name=None):
    def register(f):
        f.qcode_fixture = (name or f.__name__, scope, autouse, params)
        return f
    return register(fn) if fn is not None else register


def skip(reason="", **kwargs):
    raise Skipped(reason)


def fail(reason="", pytrace=True):
    raise Failed(reason)


def xfail(reason=""):
    raise Skipped("xfail: " + reason)


def importorskip(name, minversion=None, reason=None):
    try:
        return __import__(name)
    except ImportError:
        raise Skipped(reason or "could not import %r" % name) from None


def exception_matches(e, expected):
    """isinstance for the judge's exceptions, and by name for the program's own
    exception classes (references: their instances arrive as name + message)."""
    if type(expected) is tuple:
        return any(exception_matches(e, x) for x in expected)
    if REF_TYPE[0] is not None and type(expected) is REF_TYPE[0]:
        return getattr(e, "qcode_type", None) == expected._label
    return type(expected) is type and isinstance(e, expected)


class ExceptionInfo:
    def __init__(self):
        self.value = self.type = None

    def match(self, pattern):
        import re
        if not re.search(pattern, str(self.value)):
            raise Failed("Regex pattern %r does not match %r." % (pattern, str(self.value)))
        return True

    @property
    def typename(self):
        return getattr(self.value, "qcode_type", None) or type(self.value).__name__


class RaisesContext:
    def __init__(self, expected, match):
        self.expected, self.pattern, self.info = expected, match, ExceptionInfo()

    def __enter__(self):
        return self.info

    def __exit__(self, t, v, tb):
        if t is None:
            raise Failed("DID NOT RAISE %s" % getattr(self.expected, "__name__", getattr(self.expected, "_label", self.expected)))
        if not issubclass(t, Exception) or not exception_matches(v, self.expected):
            return False  # ProgramGone and the like are never swallowed
        self.info.value, self.info.type = v, t
        if self.pattern is not None:
            self.info.match(self.pattern)
        return True


def raises(expected, *args, match=None, **kwargs):
    ctx = RaisesContext(expected, match)
    if not args:
        return ctx
    with ctx:
        args[0](*args[1:], **kwargs)
    return ctx.info


class Approx:
    __hash__ = None

    def __init__(self, expected, rel=None, abs=None, nan_ok=False):
        self.expected, self.rel, self.abs, self.nan_ok = expected, rel, abs, nan_ok

    def __repr__(self):
        return "approx(%r)" % (self.expected,)

    def close(self, got, want):
        if REF_TYPE[0] is not None and type(got) is REF_TYPE[0]:
            return got == want  # refused by the reference itself
        if type(want) in (list, tuple):
            return type(got) in (list, tuple) and len(got) == len(want) and all(self.close(g, w) for g, w in zip(got, want))
        if type(want) is dict:
            return type(got) is dict and got.keys() == want.keys() and all(self.close(got[k], want[k]) for k in want)
        numbers = (int, float, complex)
        if type(want) in numbers and type(got) in numbers:
            if got == want:
                return True
            if want != want:
                return self.nan_ok and got != got
            if abs(want) == float("inf"):
                return False
            tolerance = 1e-12 if self.abs is None else self.abs
            if not (self.rel is None and self.abs is not None):
                tolerance = max(tolerance, (1e-6 if self.rel is None else self.rel) * abs(want))
            return abs(got - want) <= tolerance
        return got == want

    def __eq__(self, other):
        return self.close(other, self.expected)

    def __ne__(self, other):
        return not self.close(other, self.expected)


def make_pytest():
    m = type(posix)("pytest")
    m.__dict__.update(mark=MarkGenerator(), param=param, fixture=fixture, skip=skip, fail=fail, xfail=xfail,
                      importorskip=importorskip, raises=raises, approx=Approx, ExceptionInfo=ExceptionInfo)
    skip.Exception, fail.Exception = Skipped, Failed
    m.__version__ = "qcode"
    return m


def case_id(value, argname, index):
    """pytest's id for one parameter value."""
    if type(value) is str:
        return value.encode("unicode_escape").decode("ascii") if value.isascii() else value.encode("ascii", "backslashreplace").decode("ascii")
    if value is None or type(value) in (int, float, bool, complex):
        return str(value)
    name = getattr(value, "__name__", None)
    if type(name) is str and (type(value) is type or hasattr(value, "__code__")):
        return name
    return "%s%d" % (argname, index)


def parametrize_cases(marks):
    """[(id, {argname: value}, [marks])] from the parametrize marks in decorator
    order (top first): the lowest decorator varies slowest and leads the id."""
    cases = [("", {}, [])]
    for m in reversed([m for m in marks if m.name == "parametrize"]):
        argnames = m.args[0] if m.args else m.kwargs.get("argnames")
        values = m.args[1] if len(m.args) > 1 else m.kwargs.get("argvalues", ())
        ids = m.args[2] if len(m.args) > 2 else m.kwargs.get("ids")
        if type(argnames) is str:
            argnames = [a.strip() for a in argnames.split(",") if a.strip()]
        argnames = list(argnames)
        sets = []
        for i, v in enumerate(values):
            pmarks, pid = [], None
            if type(v) is ParameterSet:
                v, pmarks, pid = v.values, v.marks, v.id
                if len(argnames) == 1 and len(v) == 1:
                    v = v[0]
            row = (v,) if len(argnames) == 1 else tuple(v)
            if len(row) != len(argnames):
                raise TypeError("parametrize: %d names but %d values in case %d" % (len(argnames), len(row), i))
            if pid is None and ids is not None:
                pid = ids(v) if callable(ids) else (ids[i] if i < len(ids) else None)
                pid = None if pid is None else str(pid)
            if pid is None:
                pid = "-".join(case_id(x, n, i) for x, n in zip(row, argnames))
            sets.append((pid, dict(zip(argnames, row)), pmarks))
        if not sets:
            sets = [("NOTSET", {n: None for n in argnames}, [MarkDecorator("skip", ("got empty parameter set",))])]
        cases = [((cid + "-" + pid) if cid else pid, dict(cargs, **pargs), cmarks + pm)
                 for cid, cargs, cmarks in cases for pid, pargs, pm in sets]
    seen, out = {}, []
    for cid, args, ms in cases:
        seen[cid] = seen.get(cid, 0) + 1
    counts = {}
    for cid, args, ms in cases:
        if seen[cid] > 1:
            counts[cid] = counts.get(cid, -1) + 1
            cid = "%s%d" % (cid, counts[cid])
        out.append((cid, args, ms))
    return out


def skipped_by(marks):
    """The reason a test is not run (skip, a true skipif, xfail), or None."""
    for m in marks:
        if m.name == "skip":
            return "skip: " + str(m.kwargs.get("reason", m.args[0] if m.args else ""))
        if m.name == "skipif" and m.args and all(type(c) is bool for c in m.args) and any(m.args):
            return "skipif: " + str(m.kwargs.get("reason", ""))
        if m.name == "xfail":
            return "xfail: " + str(m.kwargs.get("reason", ""))
    return None


# doctest: its example syntax, option directives and output comparison (Lib/doctest.py).
DOCTEST_FLAGS = {"DONT_ACCEPT_TRUE_FOR_1": 1, "DONT_ACCEPT_BLANKLINE": 2, "NORMALIZE_WHITESPACE": 4, "ELLIPSIS": 8,
                 "SKIP": 16, "IGNORE_EXCEPTION_DETAIL": 32, "REPORT_UDIFF": 0, "REPORT_CDIFF": 0, "REPORT_NDIFF": 0,
                 "REPORT_ONLY_FIRST_FAILURE": 0, "FAIL_FAST": 0}


def doctest_examples(doc):
    """[(source, want, exc_msg, lineno, options)]: each `>>>` example of a docstring,
    with its 0-based line in the docstring and its directive flags as {flag: on}."""
    lines = doc.expandtabs().split("\n")
    out, i = [], 0
    while i < len(lines):
        stripped = lines[i].lstrip(" ")
        if not (stripped.startswith(">>> ") or stripped == ">>>"):
            i += 1
            continue
        indent, start = len(lines[i]) - len(stripped), i
        source = [stripped[4:]]
        i += 1
        while i < len(lines) and lines[i][indent:indent + 3] == "..." and not lines[i][:indent].strip() \
                and (lines[i][indent + 3:indent + 4] in (" ", "")):
            source.append(lines[i][indent + 4:])
            i += 1
        want = []
        while i < len(lines) and lines[i].strip() and not lines[i].lstrip(" ").startswith(">>>"):
            if lines[i][:indent].strip():
                raise ValueError("line %d of the docstring has less indentation than its example" % (i + 1))
            want.append(lines[i][indent:])
            i += 1
        want = "\n".join(want) + "\n" if want else ""
        exc_msg = None
        first = want.split("\n", 1)[0].strip()
        if first in ("Traceback (most recent call last):", "Traceback (innermost last):"):
            for j, w in enumerate(want.split("\n")[1:]):
                if w[:1].isalnum() or w[:1] == "_":
                    exc_msg = "\n".join(want.split("\n")[1 + j:])
                    break
        options = {}
        for s in source:
            k = s.find("# doctest:")
            if k < 0:
                k = s.find("#doctest:")
            if k >= 0:
                for word in s[s.index(":", k) + 1:].replace(",", " ").split():
                    if word[:1] in "+-" and word[1:] in DOCTEST_FLAGS:
                        options[DOCTEST_FLAGS[word[1:]]] = word[0] == "+"
        text = "\n".join(source) + "\n"
        out.append((text, want, exc_msg, start, options))
    return out


def doctest_output_matches(want, got, flags):
    """doctest.OutputChecker.check_output."""
    if got == want:
        return True
    if not flags & 1 and (got, want) in (("True\n", "1\n"), ("False\n", "0\n")):
        return True
    if not flags & 2:
        want = "\n".join("" if w.startswith("<BLANKLINE>") and not w[11:].strip() else w for w in want.split("\n"))
        got = "\n".join("" if not g.strip() else g for g in got.split("\n"))
        if got == want:
            return True
    if flags & 4:
        got, want = " ".join(got.split()), " ".join(want.split())
        if got == want:
            return True
    if flags & 8:
        pieces = want.split("...")
        if len(pieces) > 1:
            start, end = 0, len(got)
            if pieces[0]:
                if not got.startswith(pieces[0]):
                    return False
                start = len(pieces[0])
            if pieces[-1]:
                if not got.endswith(pieces[-1]):
                    return False
                end -= len(pieces[-1])
            if start > end:
                return False
            for p in pieces[1:-1]:
                k = got.find(p, start, end)
                if k < 0:
                    return False
                start = k + len(p)
            return True
    return False


def strip_exception_details(msg):
    start, end = 0, len(msg)
    i = msg.find("\n")
    if i >= 0:
        end = i
    i = msg.find(":", 0, end)
    if i >= 0:
        end = i
    i = msg.rfind(".", 0, end)
    if i >= 0:
        start = i + 1
    return msg[start:end]

"""#
}
