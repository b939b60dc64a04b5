import ArgumentParser
import Basics
import CodeDomain
import Daemon
import Foundation
import PythonSyntax
import RPC

// Owned by the PythonSyntax work (issue 3).
struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the syntax verdict of a whole or partial Python program.",
        discussion: """
            valid: complete and parses clean; incomplete: fine so far (an open block, an unfinished \
            last line); broken: already wrong. Exit status 0 for valid/incomplete, 1 for broken, 2 when \
            the input cannot be read.
            """)

    @Argument(help: "The program to check; - or nothing reads standard input.")
    var file: String = "-"

    @Flag(help: "Print {\"verdict\", \"errors\", \"entry_point_defined\", ...} as JSON.")
    var json = false

    @Option(name: .customLong("entry-point"), help: "Report whether the program defines this function (it wins over --tests, which then only give the arity).")
    var entryPointName: String?

    @Option(help: "A test file (assert lines); its first call names the entry point and its arity.")
    var tests: String?

    @Flag(name: .customLong("bench"), help: .hidden)
    var bench = false

    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        if bench {
            let parser: PythonParser
            do { parser = try PythonParser() } catch { fail("\(error)") }
            try SyntaxBench.run(parser: parser, trainPath: file == "-" ? "../shared/data/mbpp/train.jsonl" : file)
            return
        }
        let params = CheckParams(source: read(file, what: "program"), entryPoint: entryPointName,
                                 tests: tests.map { read($0, what: "tests") })
        let r: CheckResult
        do {
            // The same function answers `qcode/check` in the daemon.
            r = daemon.noDaemon ? try CheckResult.check(params) : try await checkInDaemon(params)
        } catch let e as ExitCode {
            throw e
        } catch let e as ResponseError {
            fail(tests.map { "\($0): \(e.message)" } ?? e.message)
        } catch let e as UserError where tests != nil && e.description.contains("no function call") {
            fail("\(tests!): \(e.description)")
        } catch {
            fail("\(error)")
        }
        if json {
            // The daemon's `qcode/check` result, byte for byte.
            print(try JSONCoding.string(r))
        } else {
            print(r.verdict.rawValue)
            for issue in r.errors {
                print("\(issue.line):\(issue.column): \(issue.message)")
            }
            if let entryName = r.entryPoint, let defined = r.entryPointDefined {
                var line = "entry point \(entryName): " + (defined ? "defined" : "not defined")
                if let arity = r.testArity, defined, let arityMatches = r.entryPointArityMatches {
                    line += arityMatches ? " (accepts \(arity) arguments)" : " (does not accept \(arity) arguments)"
                }
                print(line)
            }
        }
        if r.verdict == .broken { throw ExitCode(1) }
    }

    private func checkInDaemon(_ params: CheckParams) async throws -> CheckResult {
        let client = try await daemon.client(name: "qcode check")
        defer { client.close() }
        return try await daemonRequest(client, "qcode/check", try JSONValue.encoding(params)).decode(CheckResult.self)
    }

    private func read(_ path: String, what: String) -> String {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard FileManager.default.fileExists(atPath: path) else {
                fail("no such \(what) file: \(path) (use - to read standard input)")
            }
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                fail("cannot read the \(what) file \(path): \((error as NSError).localizedDescription); check the path and permissions")
            }
        }
        guard let text = String(data: data, encoding: .utf8) else {
            fail("the \(what) in \(path == "-" ? "standard input" : path) is not UTF-8 text; Python source must be UTF-8")
        }
        return text
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("qcode check: \(message)\n".utf8))
        Foundation.exit(2)
    }
}

/// The `--json` shape. `entry_point_defined` is always present (null when no
/// entry point was asked for) so consumers need not test for the key.
/// `qcode check --bench [TRAIN_JSONL]`: median µs per check over every
/// line-boundary prefix of the MBPP train solutions, parsed from scratch and
/// as an incremental extension of the previous prefix (what the search does).
/// Hidden: a measurement for BENCHMARKS.md, not a user feature.
enum SyntaxBench {
    static func run(parser: PythonParser, trainPath: String, rounds: Int = 5) throws {
        guard let text = try? String(contentsOf: URL(fileURLWithPath: trainPath), encoding: .utf8) else {
            FileHandle.standardError.write(Data("qcode check --bench: cannot read \(trainPath); pass the MBPP train.jsonl path\n".utf8))
            throw ExitCode(2)
        }
        var programs: [[String]] = []
        for line in text.split(separator: "\n") {
            guard let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let code = obj["code"] as? String else { continue }
            programs.append(code.unicodeScalars.split(separator: "\n").map { String($0) + "\n" })
        }
        var full: [Double] = [], incremental: [Double] = [], whole: [Double] = []
        var longFull: [Double] = [], longIncremental: [Double] = []  // prefixes of 10 lines or more
        let clock = ContinuousClock()
        func micros(_ d: Duration) -> Double {
            d.seconds * 1e6
        }
        for _ in 0..<rounds {
            for lines in programs {
                var parent = parser.parse("")
                var prefix = ""
                for (index, line) in lines.enumerated() {
                    prefix += line
                    var fresh: ParsedProgram?
                    full.append(micros(clock.measure { fresh = parser.parse(prefix) }))
                    var child: ParsedProgram?
                    incremental.append(micros(clock.measure { child = parser.extend(parent, appending: line) }))
                    precondition(child!.report == fresh!.report, "incremental and full reports differ")
                    parent = child!
                    if index >= 9 {
                        longFull.append(full.last!)
                        longIncremental.append(incremental.last!)
                    }
                }
                whole.append(full.last ?? 0)
            }
        }
        func stats(_ xs: [Double]) -> String {
            let s = xs.sorted()
            let pick = { (q: Double) in s[min(s.count - 1, Int(q * Double(s.count)))] }
            return String(format: "median %.1f µs, p90 %.1f µs (n=%d)", pick(0.5), pick(0.9), s.count)
        }
        let lineCounts = programs.map(\.count)
        print("programs: \(programs.count), prefixes: \(lineCounts.reduce(0, +)), lines per program: median \(lineCounts.sorted()[lineCounts.count / 2]), rounds: \(rounds)")
        print("full parse of a prefix:           \(stats(full))")
        print("incremental extend by one line:   \(stats(incremental))")
        print("full parse of a whole solution:   \(stats(whole))")
        print("prefixes of 10+ lines, full:      \(stats(longFull))")
        print("prefixes of 10+ lines, extend:    \(stats(longIncremental))")
    }
}
