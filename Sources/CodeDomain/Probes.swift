import PythonSyntax
import Sandbox

/// Probe inputs derived from the visible tests' call to the entry point: the
/// same call with one argument varied at a time. They run in the judge like any
/// test (the variants are computed there, by test code), and the program's
/// outputs on them — the `actual` values of deliberately failing comparisons —
/// say how it behaves beyond the visible asserts, so two programs can be told
/// apart or found to agree without knowing the right answers.
struct Probes: Sendable {
    /// The probe test file; nil when no visible test calls the entry point with
    /// plain positional arguments.
    let file: String?
    static let count = 6
    static let sentinel = "('__qcode_probe__',)"

    init(task: CodeTask) {
        guard let entry = task.entry,
              let args = task.tests.lazy.compactMap({ Self.arguments(of: entry.name, in: $0) }).first else {
            file = nil
            return
        }
        var lines = [Self.vary, "_qcode_args = (\(args),)",
                     "_qcode_probes = [tuple(_qcode_vary(a, i) if j == i % len(_qcode_args) else a "
                         + "for j, a in enumerate(_qcode_args)) for i in range(\(Self.count))]"]
        for i in 0..<Self.count {
            lines.append("assert \(entry.name)(*_qcode_probes[\(i)]) == \(Self.sentinel)")
        }
        file = lines.joined(separator: "\n") + "\n"
    }

    /// The program's outputs (or exceptions) on the probes, as one string.
    func fingerprint(_ report: TestReport) -> String {
        var parts = report.asserts.map { a -> String in
            if let actual = a.actual { return "=" + actual }
            if let type = a.exceptionType { return "!" + type }
            return "?" + (a.message ?? "")
        }
        if report.outcome == .timeout || report.outcome == .crashed { parts.append(report.outcome.rawValue) }
        if let syntax = report.syntaxError { parts.append("syntax " + syntax) }
        return parts.joined(separator: "\u{1F}")
    }

    /// The source of the positional arguments of the first call to `name` in
    /// `test`; nil when there is none, or it has keyword or starred arguments.
    static func arguments(of name: String, in test: String) -> String? {
        let tokenizer = PythonTokenizer(test)
        let tokens = Array(tokenizer)
        guard let k = tokens.indices.first(where: {
            tokens[$0].kind == .name && tokenizer.text(of: tokens[$0]) == name && $0 + 1 < tokens.count
                && tokenizer.text(of: tokens[$0 + 1]) == "(" && ($0 == 0 || tokenizer.text(of: tokens[$0 - 1]) != ".")
        }) else { return nil }
        var depth = 0
        for j in (k + 1)..<tokens.count {
            let t = tokens[j], text = tokenizer.text(of: t)
            guard t.kind == .op else { continue }
            if text == "(" || text == "[" || text == "{" {
                depth += 1
            } else if text == ")" || text == "]" || text == "}" {
                depth -= 1
                if depth == 0 {
                    let start = tokens[k + 1].end, end = t.start
                    guard end > start else { return nil }  // no arguments: nothing to vary
                    return String(decoding: tokenizer.bytes[start..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                }
            } else if depth == 1 {
                // A keyword argument (`key=…`) or a starred one (`*xs` after `(` or `,`): not varied.
                if text == "=" { return nil }
                if text == "*" || text == "**", j == k + 2 || tokenizer.text(of: tokens[j - 1]) == "," { return nil }
            }
        }
        return nil
    }

    /// Test code, run in the judge: a deterministic variant of a value.
    static let vary = """
        def _qcode_vary(v, i):
            try:
                t = type(v)
                if t is bool:
                    return not v
                if t is int:
                    return (v + 1, v - 1, 0, v * 2, -v, v + 7)[i % 6]
                if t is float:
                    return (v * 1.5, -v, 0.0, v + 1.0, v / 3, v * 2)[i % 6]
                if t is str:
                    return (v[::-1], v.upper(), v[: len(v) // 2], v + v[:1], v.lower() + "x", " " + v)[i % 6]
                if t is list or t is tuple:
                    w = list(v)
                    options = (w[::-1], w[: len(w) // 2], w + w[:1], w[1:], w * 2, [_qcode_vary(x, i) for x in w])
                    return t(options[i % 6])
                if t is dict:
                    items = list(v.items())
                    return dict(items[: len(items) // 2]) if i % 2 else dict(items[::-1])
                if t is set:
                    return set(list(v)[: len(v) // 2])
            except Exception:
                pass
            return v
        """
}
