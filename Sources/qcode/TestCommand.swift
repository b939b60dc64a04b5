import ArgumentParser
import Basics
import Foundation
import Daemon
import RPC
import Sandbox

// Owned by the Sandbox work (issue 4).
struct TestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run a solution against a test file in the jail.",
        discussion: """
            Each top-level assert in TESTS runs separately, and so does each pytest-style test function \
            (each parametrize case) when TESTS has them; `import MODULE` in TESTS is the solution, MODULE \
            being its file name. The verdict comes from the checks, not from the program's exit code. \
            Exit status: 0 passed, 1 failed (or timeout, crash, error), 2 usage or I/O error.
            """)

    @Argument(help: "The Python program under test.") var solution: String
    @Argument(help: "A Python file of top-level asserts and/or pytest-style test functions.") var tests: String
    @Option(help: "Python code run before the program (MBPP test_setup_code).") var setup: String?
    @Option(help: "Wall-clock limit in seconds.") var timeout: Double = JailLimits.default.wallSeconds
    @Flag(help: "Print the verdict as JSON.") var json = false
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
    }

    func run() async throws {
        let program = try read(solution, what: "solution")
        let testSource = try read(tests, what: "tests")
        let setupSource = try setup.map { try read($0, what: "setup") } ?? ""
        // pytest-style when the file defines tests; the solution is the module its name says.
        let pytest = testSource.split(separator: "\n").contains { $0.hasPrefix("def test") || $0.hasPrefix("class Test") }
        let module = URL(fileURLWithPath: solution).deletingPathExtension().lastPathComponent
        let job = JailJob(program: program, tests: testSource, setup: setupSource, kind: pytest ? .pytest : .asserts,
                          module: module.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } ? module : nil)
        var limits = JailLimits.default
        limits.wallSeconds = timeout
        limits.cpuSeconds = max(1, min(limits.cpuSeconds, Int(timeout.rounded(.up))))
        let report: TestReport
        if daemon.noDaemon {
            do {
                report = try await Jail(limits: limits).run(job)
            } catch let error as JailError {
                fail(error.description)
            }
        } else {
            let client: RPCClient
            do { client = try await daemon.client(name: "qcode test") } catch { fail("\(error)") }
            defer { client.close() }
            do {
                let params = TestParams(program: program, tests: testSource, setup: setupSource, timeout: timeout, kind: job.kind,
                                        module: job.module)
                report = try await daemonRequest(client, "qcode/test", try JSONValue.encoding(params)).decode(TestReport.self)
            } catch let e as ExitCode {
                throw e
            } catch {
                fail("\(error)")
            }
        }
        if json {
            printJSON(report)
        } else {
            printHuman(report)
        }
        if report.outcome != .passed { throw ExitCode(1) }
    }

    private func read(_ path: String, what: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            fail("cannot read the \(what) file \(path): check the path and its permissions")
        }
        return String(decoding: data, as: UTF8.self)
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("qcode test: \(message)\n".utf8))
        Foundation.exit(2)
    }

    private func printHuman(_ r: TestReport) {
        if let syntax = r.syntaxError { print("✗ syntax error in \(solution): \(syntax)") }
        for a in r.asserts {
            let mark = a.passed ? "✓" : "✗"
            var line = "\(mark) \(tests):\(a.line) \(a.source.isEmpty ? "(statement)" : a.source)"
            if !a.passed {
                let detail = [a.exceptionType, a.message].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
                if !detail.isEmpty { line += " — \(detail)" }
            }
            print(line)
        }
        if r.outcome != .passed && !r.stderr.isEmpty {
            print("--- stderr ---\n\(r.stderr.suffix(2000))")
        }
        let extra = r.signal.map { ", signal \($0)" } ?? ""
        print("\(r.outcome.rawValue): \(r.passed)/\(r.total) checks passed in \(String(format: "%.0f", r.wallMs)) ms\(extra) [\(r.isolation.rawValue)]")
    }

    private func printJSON(_ r: TestReport) {
        // The daemon's `qcode/test` result, byte for byte, with times rounded to 0.1 ms.
        var shown = r
        shown.wallMs = (r.wallMs * 10).rounded() / 10
        shown.cpuMs = (r.cpuMs * 10).rounded() / 10
        if let text = try? JSONCoding.string(shown) { print(text) }
    }
}
