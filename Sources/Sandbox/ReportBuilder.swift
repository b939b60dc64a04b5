import Foundation

/// Turns the judge's records into a report. The records come from the judge's
/// process alone (the program never holds fd 3 or the nonce); the nonce check
/// remains as a second fence. The plan fixes which asserts must report, so a
/// missing record is a failure, never a pass.
enum ReportBuilder {
    struct Record: Decodable {
        struct Planned: Decodable { var index: Int; var line: Int; var source: String; var kind: String? }
        var nonce: String
        var kind: String
        var index: Int?
        var line: Int?
        var passed: Bool?
        var excType: String?
        var message: String?
        var `where`: String?
        var asserts: [Planned]?
        var count: Int?
        var expected: String?
        var actual: String?

        enum CodingKeys: String, CodingKey {
            case nonce, kind, index, line, passed, message, asserts, count, `where`, expected, actual
            case excType = "exc_type"
        }
    }

    static func records(_ data: Data, nonce: String) -> [Record] {
        let decoder = JSONDecoder()
        return data.split(separator: UInt8(ascii: "\n")).compactMap { line in
            guard let r = try? decoder.decode(Record.self, from: Data(line)), r.nonce == nonce else { return nil }
            return r
        }
    }

    static func text(_ data: Data, truncated: Bool) -> String {
        let s = String(decoding: data, as: UTF8.self)
        return truncated ? s + "\n[qcode-jail: output truncated]" : s
    }

    static func build(nonce: String, output: LauncherOutput, status: LauncherStatus, limits: JailLimits) -> TestReport {
        let recs = records(output.results, nonce: nonce)
        var stderr = text(output.stderr, truncated: status.stderrTruncated)
        var report = TestReport(outcome: .error, passed: 0, failed: 0, total: 0, asserts: [],
                                stdout: text(output.stdout, truncated: status.stdoutTruncated), stderr: stderr,
                                wallMs: status.wallMs, cpuMs: status.cpuMs,
                                signal: status.signal != 0 ? status.signal : nil, syntaxError: nil,
                                isolation: status.isolation, path: status.path)
        if let syntax = recs.first(where: { $0.kind == "syntax" }) {
            report.syntaxError = "line \(syntax.line ?? 0): \(syntax.message ?? "")"
            return report
        }
        if let bad = recs.first(where: { $0.kind == "harness_error" }) {
            report.stderr = stderr + "\n[qcode: \(bad.message ?? "unusable tests")]"
            return report
        }
        // The judge plans top-level asserts (and doctest examples) before any program code
        // runs, and pytest-style tests once the test file's top level has defined them.
        var plan: [Record.Planned] = []
        for r in recs where r.kind == "plan" {
            for p in r.asserts ?? [] where !plan.contains(where: { $0.index == p.index }) { plan.append(p) }
        }
        var results: [Int: AssertResult] = [:]
        var extra: [AssertResult] = []
        for r in recs {
            if r.kind == "assert", let i = r.index, let p = plan.first(where: { $0.index == i }), results[i] == nil {
                results[i] = AssertResult(index: i, line: p.line, source: p.source, passed: r.passed == true,
                                          exceptionType: r.excType, message: r.message, expected: r.expected, actual: r.actual,
                                          kind: p.kind)
            } else if r.kind == "stmt" {
                extra.append(AssertResult(index: -1, line: r.line ?? 0, source: "", passed: false,
                                          exceptionType: r.excType, message: r.message))
            }
        }
        let programError = recs.first(where: { $0.kind == "program_error" })
        let done = recs.contains { $0.kind == "done" }
        let whyNotRun: String
        if let e = programError {
            whyNotRun = "not run: the \(e.where ?? "program") raised \(e.excType ?? "an exception") at line \(e.line ?? 0)"
        } else if status.timedOut {
            whyNotRun = "not run: wall-clock limit of \(limits.wallSeconds) s reached"
        } else if status.signal != 0 {
            whyNotRun = "not run: the program was killed by signal \(status.signal)"
        } else if !done && status.judgeRan && (status.judgeSignal != 0 || status.judgeExitCode != 0) {
            whyNotRun = "not run: the judge failed (exit \(status.judgeExitCode), signal \(status.judgeSignal))"
        } else {
            whyNotRun = done ? "not run" : "not run: the program or the judge exited (program exit code \(status.exitCode)) before this check"
        }
        report.asserts = plan.map { p in
            results[p.index] ?? AssertResult(index: p.index, line: p.line, source: p.source, passed: false,
                                             exceptionType: nil, message: whyNotRun, kind: p.kind)
        } + extra
        report.total = report.asserts.count
        report.passed = report.asserts.filter(\.passed).count
        report.failed = report.total - report.passed

        let cpuKill = status.signal == SIGXCPU || (status.signal == SIGKILL && status.cpuMs >= Double(limits.cpuSeconds) * 1000)
        if status.timedOut || cpuKill {
            report.outcome = .timeout
        } else if status.outputFlood {
            report.outcome = .crashed
            stderr += "\n[qcode-jail: output limit exceeded, program killed]"
            report.stderr = stderr
        } else if status.signal != 0 {
            report.outcome = .crashed
        } else if let e = programError {
            report.outcome = .error
            report.stderr = stderr + "\n[qcode: \(e.where ?? "program") raised \(e.excType ?? "?"): \(e.message ?? "")]"
        } else if !done && status.judgeRan && (status.judgeSignal != 0 || status.judgeExitCode != 0) {
            report.outcome = .error
            report.stderr = stderr + "\n[qcode: the judge failed (exit \(status.judgeExitCode), signal \(status.judgeSignal)); see stderr above]"
        } else if plan.isEmpty {
            report.outcome = .error
            report.stderr = stderr + "\n[qcode: the tests have no checks: no top-level assert, no test function, no doctest example]"
        } else if done && report.failed == 0 {
            report.outcome = .passed
        } else {
            report.outcome = .failed
        }
        return report
    }
}
