import Basics
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Policy
import QStar
import Sandbox

/// One sampled program and its outcome: a line of a rollouts JSONL file.
/// Per-line log-probabilities are kept so the training features match what
/// the search sees for a proposed line.
public struct RolloutRecord: Sendable, Codable, Hashable {
    public var taskId: String
    public var sample: Int
    public var lines: [String]
    /// Sum of token log-probabilities attributed to each line (nil when the server gave no token texts).
    public var lineLogprobSum: [Double]?
    public var lineTokens: [Int]?
    /// The policy ended the program itself (rather than a token limit).
    public var ended: Bool
    public var testsPassed: Int
    public var testsTotal: Int
    public var outcome: String
    /// 1 when every test of the task passed, else 0.
    public var reward: Double
    /// How many asserts the prompt showed.
    public var visible: Int

    public init(taskId: String, sample: Int, lines: [String], lineLogprobSum: [Double]? = nil, lineTokens: [Int]? = nil,
                ended: Bool = true, testsPassed: Int = 0, testsTotal: Int = 1, outcome: String = "", reward: Double,
                visible: Int = 1) {
        self.taskId = taskId
        self.sample = sample
        self.lines = lines
        self.lineLogprobSum = lineLogprobSum
        self.lineTokens = lineTokens
        self.ended = ended
        self.testsPassed = testsPassed
        self.testsTotal = testsTotal
        self.outcome = outcome
        self.reward = reward
        self.visible = visible
    }

    public func logprob(line i: Int) -> (sum: Double, tokens: Int)? {
        guard let s = lineLogprobSum, let t = lineTokens, i < s.count, i < t.count else { return nil }
        return (s[i], t[i])
    }
}

/// Rollouts that cannot be read or written.
public enum RolloutError: Error, Sendable, CustomStringConvertible, Equatable {
    case unreadable(String, String)
    /// The file and the system's reason (`strerror`).
    case unwritable(String, String)

    public var description: String {
        switch self {
        case .unreadable(let path, let why):
            return "cannot read rollouts \(path): \(why); create it with `qcode rollouts DATA.jsonl --out \(path)`"
        case .unwritable(let path, let why):
            return "cannot write rollouts file \(path): \(why); check that its folder is writable and the disk has room, "
                + "or choose another --out (the tasks already in it are kept)"
        }
    }
}

/// Reading and appending rollouts JSONL. A torn last line (an interrupted
/// run) is skipped rather than fatal.
public enum RolloutFile {
    /// All records, grouped by task in file order.
    public static func load(_ path: String) throws -> [(taskId: String, records: [RolloutRecord])] {
        guard FileManager.default.fileExists(atPath: path) else { throw RolloutError.unreadable(path, "no such file") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw RolloutError.unreadable(path, (error as NSError).localizedDescription)
        }
        let decoder = JSONCoding.decoder
        var groups: [(taskId: String, records: [RolloutRecord])] = []
        var index: [String: Int] = [:]
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            guard let r = try? decoder.decode(RolloutRecord.self, from: Data(line)) else { continue }
            if let i = index[r.taskId] { groups[i].records.append(r) } else {
                index[r.taskId] = groups.count
                groups.append((r.taskId, [r]))
            }
        }
        return groups
    }

    /// Task ids with at least `perTask` records: what a resumed run skips.
    /// Only ids are kept, so resuming a large file stays small in memory.
    public static func completedTasks(_ path: String, perTask: Int) -> Set<String> {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else { return [] }
        struct Id: Decodable { var taskId: String }
        let decoder = JSONCoding.decoder
        var counts: [String: Int] = [:]
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            if let r = try? decoder.decode(Id.self, from: Data(line)) { counts[r.taskId, default: 0] += 1 }
        }
        return Set(counts.filter { $0.value >= perTask }.keys)
    }

    /// Appends one task's records in a single write, flushed to disk. A JSONL
    /// file grows for hours, so it is appended to rather than rewritten and
    /// renamed like a report: rewriting would cost the whole file per task.
    /// Instead a failed write (a full disk) is cut back to where the file
    /// ended, so the file holds whole tasks only; a crash can leave at most a
    /// torn last line, which `load` skips and the next append starts after.
    public static func append(_ records: [RolloutRecord], to path: String) throws {
        let encoder = JSONCoding.encoder
        var blob = Data()
        for r in records {
            blob.append(try encoder.encode(r))
            blob.append(UInt8(ascii: "\n"))
        }
        let fd = try open(path)
        defer { close(fd) }
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else { throw RolloutError.unwritable(path, String(cString: strerror(errno))) }
        guard !blob.isEmpty else { return }
        // A torn line from an interrupted run must not swallow the next record.
        var last: UInt8 = UInt8(ascii: "\n")
        if end > 0, pread(fd, &last, 1, end - 1) == 1, last != UInt8(ascii: "\n") { blob.insert(UInt8(ascii: "\n"), at: 0) }
        if let failure = AtomicFile.writeFully(fd, blob, at: end) {
            _ = ftruncate(fd, end)
            throw RolloutError.unwritable(path, String(cString: strerror(failure)))
        }
    }

    /// Creates the file (and its folder) when missing and checks that it can
    /// be written: `qcode rollouts` calls it before sampling anything.
    public static func prepare(_ path: String) throws {
        close(try open(path))
    }

    private static func open(_ path: String) throws -> Int32 {
        if let e = AtomicFile.makeFolders(URL(fileURLWithPath: path).deletingLastPathComponent().path) {
            throw RolloutError.unwritable(path, String(cString: strerror(e)))
        }
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw RolloutError.unwritable(path, String(cString: strerror(errno))) }
        return fd
    }
}

/// Splits a whole-program completion into lines, attributing each token's
/// log-probability to the line it belongs to. Tokens holding a newline are
/// left out: the line-by-line search never sees them (they are its stop string).
public func splitCompletion(_ choice: CompletionChoice) -> (lines: [String], logprobSum: [Double]?, tokens: [Int]?) {
    var lines = choice.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    while let last = lines.last, last.trimmingCharacters(in: .whitespaces).isEmpty { lines.removeLast() }
    guard !choice.tokenTexts.isEmpty, choice.tokenTexts.count == choice.tokenLogprobs.count else { return (lines, nil, nil) }
    var sums = [Double](repeating: 0, count: lines.count)
    var counts = [Int](repeating: 0, count: lines.count)
    var line = 0
    for (text, lp) in zip(choice.tokenTexts, choice.tokenLogprobs) {
        if text.contains("\n") {
            line += text.reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }
            continue
        }
        guard line < lines.count else { break }
        sums[line] += lp
        counts[line] += 1
    }
    return (lines, sums, counts)
}

/// Samples programs for a task with the policy and scores each on all of the
/// task's tests. The M samples share one prompt in one `n`-request, so the
/// server evaluates the task prefix once and its prefix cache serves it.
public struct RolloutSampler: Sendable {
    public let model: any LanguageModel
    public let verifier: any ProgramVerifier
    public let prompts: PromptBuilder
    public var temperature: Double
    public var maxProgramTokens: Int
    public var visible: Int

    public init(model: any LanguageModel, verifier: any ProgramVerifier, prompts: PromptBuilder = PromptBuilder(),
                temperature: Double = 0.8, maxProgramTokens: Int = 512, visible: Int = 1) {
        self.model = model
        self.verifier = verifier
        self.prompts = prompts
        self.temperature = temperature
        self.maxProgramTokens = maxProgramTokens
        self.visible = visible
    }

    public func sample(_ task: CodeTask, n: Int, seed: UInt64) async throws -> [RolloutRecord] {
        let shown = task.visible(visible)
        let request = CompletionRequest(
            prompt: prompts.prompt(for: shown, lines: []), n: n, maxTokens: maxProgramTokens,
            stop: prompts.endMarkers, sampling: Sampling(temperature: temperature), seed: seed)
        let response = try await model.complete(request)
        let splits = response.choices.map { splitCompletion($0) }
        // The samples arrived together: judge them side by side (the jail bounds how many at once).
        let reports = try await withThrowingTaskGroup(of: (Int, TestReport).self) { group in
            for (i, split) in splits.enumerated() {
                let program = split.lines.isEmpty ? "" : split.lines.joined(separator: "\n") + "\n"
                let job = JailJob(program: program, tests: task.tests.joined(separator: "\n"), setup: task.setup)
                group.addTask { [verifier] in (i, try await verifier.run(job)) }
            }
            return try await group.reduce(into: [Int: TestReport]()) { $0[$1.0] = $1.1 }
        }
        return response.choices.enumerated().map { i, choice in
            let split = splits[i], verdict = reports[i]!.verification(expected: task.tests.count)
            return RolloutRecord(
                taskId: task.id, sample: i, lines: split.lines, lineLogprobSum: split.logprobSum, lineTokens: split.tokens,
                ended: choice.finish != .length, testsPassed: verdict.passed, testsTotal: verdict.total,
                outcome: verdict.outcome, reward: verdict.reward, visible: visible)
        }
    }
}
