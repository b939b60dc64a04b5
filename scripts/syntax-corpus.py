#!/usr/bin/env python3
"""Generate the syntax-verdict corpus from MBPP train solutions (stdlib only).

    scripts/syntax-corpus.py [TRAIN_JSONL] [OUT_JSONL]

defaults: ../shared/data/mbpp/train.jsonl (beside the repo) and stdout.

Each output line is {"source", "expect", "kind", "task_id"}:
- kind "prefix", expect "not_broken": every line-boundary prefix (the first k
  lines, each with its newline) of every solution CPython compiles. A prefix of
  a valid program can always be completed, so marking one broken is a false
  alarm that would prune a good branch.
- kind "mutant:<how>", expect "broken": the whole solution with one small
  edit, kept only if CPython's compile() rejects it. Nothing else filters the
  mutants, so the catch rate is honest.

Deterministic: one fixed seed per task.
"""
import io
import json
import keyword
import os
import random
import sys
import tokenize
import warnings

MUTANTS_PER_KIND = 2
BRACKETS = "()[]{}"
# Binary operators whose doubling is never valid ('+'/'-' double as unary).
DOUBLABLE = {"*", "/", "%", "==", "!=", "<", ">", "<=", ">=", "//", "**", "and", "or"}
MISSPELL = {"def": "dfe", "return": "retrun", "for": "fro", "in": "inn", "while": "whlie",
            "else": "esle", "elif": "elfi", "if": "fi", "import": "imoprt", "lambda": "lamda",
            "not": "nto", "class": "clas"}


def compiles(src):
    try:
        compile(src, "<mutant>", "exec")
        return True
    except (SyntaxError, ValueError):
        return False


def tokens(src):
    try:
        return list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, SyntaxError):
        return []


def offsets(src):
    """(row, col) -> string offset, rows 1-based as tokenize reports them."""
    starts, pos = [0], 0
    for line in src.splitlines(keepends=True):
        pos += len(line)
        starts.append(pos)
    return lambda row, col: starts[row - 1] + col


def candidates(src, toks):
    """Yield (kind, mutated source) for every applicable single edit."""
    at = offsets(src)
    lines = src.splitlines(keepends=True)
    for t in toks:
        s, e = at(*t.start), at(*t.end)
        if t.type == tokenize.OP and t.string in BRACKETS:
            yield "delete-bracket", src[:s] + src[e:]
            yield "insert-bracket", src[:s] + random.choice("([{") + src[s:]
        if t.type == tokenize.OP and t.string == ":" and src[e:].lstrip(" \t").startswith(("\n", "\r", "#")):
            yield "drop-colon", src[:s] + src[e:]
        if (t.type == tokenize.OP or t.string in ("and", "or")) and t.string in DOUBLABLE:
            yield "double-operator", src[:e] + " " + t.string + src[e:]
        if t.type == tokenize.STRING and t.string[-1] in "'\"" and not t.string.endswith(('"""', "'''")):
            yield "unterminated-string", src[:e - 1] + src[e:]
        if t.type == tokenize.NAME and t.string in MISSPELL:
            yield "bad-keyword", src[:s] + MISSPELL[t.string] + src[e:]
        if t.type == tokenize.OP and t.string == ",":
            yield "drop-comma", src[:s] + " " + src[e:]
        if t.type == tokenize.NAME and not keyword.iskeyword(t.string):
            yield "keyword-as-name", src[:s] + random.choice(["class", "return", "pass"]) + src[e:]
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        nl = line[len(body):]
        if body.strip():
            yield "stray-closer", "".join(lines[:i]) + body + random.choice(")]}") + nl + "".join(lines[i + 1:])
            if i > 0:
                yield "indent", "".join(lines[:i]) + "  " + line + "".join(lines[i + 1:])


def main():
    warnings.simplefilter("ignore")  # compile()'s SyntaxWarnings are noise here
    here = os.path.dirname(os.path.abspath(__file__))
    train = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "shared", "data", "mbpp", "train.jsonl")
    out = open(sys.argv[2], "w") if len(sys.argv) > 2 else sys.stdout
    with open(train) as f:
        tasks = [json.loads(l) for l in f if l.strip()]
    for task in tasks:
        code = task["code"]
        if not code.endswith("\n"):
            code += "\n"
        if not compiles(code):
            continue
        lines = code.splitlines(keepends=True)
        for k in range(1, len(lines) + 1):
            out.write(json.dumps({"source": "".join(lines[:k]), "expect": "not_broken", "kind": "prefix",
                                  "task_id": task["task_id"]}) + "\n")
        random.seed(task["task_id"])
        by_kind = {}
        for kind, mutated in candidates(code, tokens(code)):
            by_kind.setdefault(kind, []).append(mutated)
        for kind in sorted(by_kind):
            pool = by_kind[kind]
            random.shuffle(pool)
            kept = 0
            for mutated in pool:
                if kept == MUTANTS_PER_KIND:
                    break
                if mutated != code and not compiles(mutated):
                    out.write(json.dumps({"source": mutated, "expect": "broken", "kind": "mutant:" + kind,
                                          "task_id": task["task_id"]}) + "\n")
                    kept += 1
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
