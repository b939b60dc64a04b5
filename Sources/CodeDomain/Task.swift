import Foundation
import PythonSyntax

/// A programming task: MBPP style (what to write, and the asserts that judge it), or
/// a function stub in a module with the tests found where they live (`stub`, `suite`).
public struct CodeTask: Sendable, Hashable, Codable {
    public var id: String
    public var text: String
    /// One top-level test statement each (normally an `assert`).
    public var tests: [String]
    /// Code run before the program and its tests (MBPP `test_setup_code`).
    public var setup: String
    /// MBPP's harder extra tests: scored and reported separately.
    public var challengeTests: [String]
    /// The function the tests call, when given explicitly (it wins over what
    /// the tests suggest); `entry` resolves it.
    public var entryPoint: String?
    /// A reference solution when the data has one (MBPP `code`); never shown to the policy.
    public var reference: String?
    /// A stub task: the module and the function whose body qcode writes (see `StubTasks`).
    public var stub: StubContext?
    /// The visible tests when they are not top-level asserts: a pytest-style file or a
    /// docstring's examples. With neither this nor `tests`, nothing verifies a program.
    public var suite: TestSuite?
    /// What scores a benchmark's answer when it is not all of `tests` (HumanEval's `check`);
    /// never shown to the search.
    public var scoring: TestSuite?

    public init(id: String, text: String, tests: [String], setup: String = "", challengeTests: [String] = [],
                entryPoint: String? = nil, reference: String? = nil) {
        self.id = id
        self.text = text
        self.tests = tests
        self.setup = setup
        self.challengeTests = challengeTests
        self.entryPoint = entryPoint
        self.reference = reference
    }

    /// The function under test and the arity the tests call it with: the one
    /// resolution the search, the value model and `check` all use.
    public var entry: EntryPoint? { EntryPoint.resolve(name: entryPoint, tests: tests) }

    /// The same task with only the first `n` tests visible: the honest MBPP
    /// protocol shows the search one assert and scores on all of them.
    public func visible(_ n: Int) -> CodeTask {
        var t = self
        t.tests = Array(tests.prefix(max(0, n)))
        return t
    }
}

public enum TaskError: Error, Sendable, CustomStringConvertible, Equatable {
    case unreadable(String, String)
    case malformed(String, String)
    case noTests(String)
    case taskNotFound(String, String)

    public var description: String {
        switch self {
        case .unreadable(let path, let why): return "cannot read \(path): \(why)"
        case .malformed(let where_, let why): return "\(where_): \(why)"
        case .noTests(let where_): return "\(where_): the task has no tests; give a test file with at least one `assert`"
        case .taskNotFound(let id, let path): return "no task with task_id \(id) in \(path): check --task-id"
        }
    }
}

/// Reading tasks from MBPP JSONL and from qcode task files.
public enum TaskLoader {
    /// One MBPP record (`task_id`, `text`, `test_list`, `test_setup_code`, `challenge_test_list`, `code`).
    public static func mbpp(_ line: Substring, location: String) throws -> CodeTask {
        guard let data = line.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TaskError.malformed(location, "not a JSON object; each line must be one MBPP record")
        }
        guard let text = object["text"] as? String else {
            throw TaskError.malformed(location, "missing string field `text`")
        }
        guard let tests = object["test_list"] as? [String], !tests.isEmpty else { throw TaskError.noTests(location) }
        let id: String
        if let n = object["task_id"] as? NSNumber { id = n.stringValue } else { id = object["task_id"] as? String ?? location }
        return CodeTask(id: id, text: text, tests: tests, setup: object["test_setup_code"] as? String ?? "",
                        challengeTests: object["challenge_test_list"] as? [String] ?? [],
                        entryPoint: object["entry_point"] as? String, reference: object["code"] as? String)
    }

    /// All records of an MBPP JSONL file, in file order.
    public static func mbppFile(_ url: URL) throws -> [CodeTask] {
        let text = try read(url)
        var tasks: [CodeTask] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            tasks.append(try mbpp(line, location: "\(url.path):\(i + 1)"))
        }
        return tasks
    }

    /// One HumanEval record (`task_id`, `prompt`, `entry_point`, `test` defining
    /// `check(candidate)`; `canonical_solution` kept as the reference, never shown): a stub
    /// task on the prompt whose visible tests are its docstring's examples and whose score
    /// is `check` (see BENCHMARKS.md, "HumanEval protocol").
    public static func humanEval(_ line: Substring, location: String) throws -> CodeTask {
        guard let data = line.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TaskError.malformed(location, "not a JSON object; each line must be one HumanEval record")
        }
        for field in ["task_id", "prompt", "entry_point", "test"] where !(object[field] is String) {
            throw TaskError.malformed(location, "missing string field `\(field)` of a HumanEval record")
        }
        let id = object["task_id"] as! String, entry = object["entry_point"] as! String
        var task: CodeTask
        do { task = try StubTasks.load(source: object["prompt"] as! String, path: nil, function: entry, id: id, continuing: true) } catch {
            throw TaskError.malformed(location, "\(id): \(error)")
        }
        task.scoring = TestSuite(kind: .pytest, source: (object["test"] as! String) + "\n\ndef test_check():\n    check(\(entry))\n",
                                 origin: "HumanEval check")
        task.reference = object["canonical_solution"] as? String
        return task
    }

    /// A benchmark file: MBPP or HumanEval JSONL, told apart by its first record.
    public static func benchmarkFile(_ url: URL) throws -> [CodeTask] {
        if url.pathExtension == "gz" {
            throw TaskError.unreadable(url.path, "a gzip file: give the .jsonl beside it (scripts/bootstrap --bench-data writes both)")
        }
        let text = try read(url)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            .filter { !$0.element.trimmingCharacters(in: .whitespaces).isEmpty }
        guard let first = lines.first else { return [] }
        let isHumanEval = (try? JSONSerialization.jsonObject(with: Data(first.element.utf8)) as? [String: Any])
            .map { $0["entry_point"] != nil && $0["prompt"] != nil } ?? false
        if !isHumanEval { return try mbppFile(url) }
        return try lines.map { try humanEval($0.element, location: "\(url.path):\($0.offset + 1)") }
    }

    /// A qcode task file: JSON with `text`, `tests` (a path relative to the
    /// task file, or inline asserts), optional `entry_point`, `setup`, `id`.
    public static func taskFile(_ url: URL) throws -> CodeTask {
        let raw = try read(url)
        guard let object = try? JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any] else {
            throw TaskError.malformed(url.path, "not a JSON object (see examples/README.md for the task format)")
        }
        guard let text = object["text"] as? String else {
            throw TaskError.malformed(url.path, "missing string field `text`, the task description")
        }
        let tests: [String]
        if let file = object["test_file"] as? String {
            let testURL = URL(fileURLWithPath: file, relativeTo: url.deletingLastPathComponent())
            tests = TestFile.statements(try read(testURL))
        } else if let inline = object["tests"] as? [String] {
            tests = inline
        } else {
            throw TaskError.malformed(url.path, "give the tests as `test_file` (a path) or `tests` (a list of asserts)")
        }
        guard !tests.isEmpty else { throw TaskError.noTests(url.path) }
        let id = object["id"] as? String ?? url.deletingPathExtension().lastPathComponent
        return CodeTask(id: id, text: text, tests: tests, setup: object["setup"] as? String ?? "",
                        entryPoint: object["entry_point"] as? String)
    }

    /// A description and a test file given separately (`--prompt TEXT --tests FILE`).
    public static func adHoc(text: String, testFile: URL, entryPoint: String? = nil) throws -> CodeTask {
        let tests = TestFile.statements(try read(testFile))
        guard !tests.isEmpty else { throw TaskError.noTests(testFile.path) }
        return CodeTask(id: testFile.deletingPathExtension().lastPathComponent, text: text, tests: tests,
                        entryPoint: entryPoint)
    }

    static func read(_ url: URL) throws -> String {
        do { return try String(contentsOf: url, encoding: .utf8) } catch {
            throw TaskError.unreadable(url.path, (error as NSError).localizedDescription)
        }
    }
}

/// Test files are plain Python: top-level statements, normally asserts.
public enum TestFile {
    /// Splits a test file into its top-level statements. A statement continues
    /// over indented lines, while brackets are open, inside multi-line strings
    /// and after a backslash; comments and blank lines between statements are
    /// dropped. Imports are kept with the statement that follows them, since
    /// an assert may need them.
    public static func statements(_ source: String) -> [String] {
        let text = source.replacingOccurrences(of: "\r", with: "")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let inside = continuedLines(text, count: lines.count)
        var statements: [String] = []
        var current: [String] = []
        var preamble: [String] = []
        func flush() {
            guard !current.isEmpty else { return }
            let statement = current.joined(separator: "\n")
            if statement.hasPrefix("import ") || statement.hasPrefix("from ") {
                preamble.append(statement)
            } else {
                statements.append((preamble + [statement]).joined(separator: "\n"))
                preamble = []
            }
            current = []
        }
        for (i, line) in lines.enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            let continues = inside[i] || (line.first.map { $0 == " " || $0 == "\t" } ?? false)
            if !continues {
                flush()
                if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            }
            if trimmed.isEmpty && current.isEmpty { continue }
            current.append(line)
        }
        flush()
        return statements
    }

    /// For each physical line: does it start inside brackets, a string, or after a backslash?
    static func continuedLines(_ text: String, count: Int) -> [Bool] {
        let bytes = Array(text.utf8)
        var lineStarts = [0]
        for (i, b) in bytes.enumerated() where b == 0x0A { lineStarts.append(i + 1) }
        var inside = [Bool](repeating: false, count: max(count, lineStarts.count))
        func line(of offset: Int) -> Int {
            var lo = 0, hi = lineStarts.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
            }
            return lo
        }
        var depth = 0
        let tokenizer = PythonTokenizer(bytes)
        for t in tokenizer {
            switch t.kind {
            case .op:
                switch tokenizer.text(of: t) {
                case "(", "[", "{": depth += 1
                case ")", "]", "}": depth = max(0, depth - 1)
                default: break
                }
            case .newline where depth > 0, .continuation:
                let next = line(of: t.start) + 1
                if next < inside.count { inside[next] = true }
            case .string:
                let first = line(of: t.start), last = line(of: max(t.start, t.end - 1))
                if last > first { for l in (first + 1)...last where l < inside.count { inside[l] = true } }
            default:
                break
            }
        }
        return inside
    }
}
