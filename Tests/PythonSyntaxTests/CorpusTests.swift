import Foundation
import Testing
import TestSupport
@testable import PythonSyntax

/// The corpus is generated at test time by scripts/syntax-corpus.py from the
/// MBPP train solutions (../shared/data/mbpp beside the repo), so the bounds
/// are measured on exactly what the generator produces today.
struct CorpusEntry: Decodable {
    var source: String
    var expect: String
    var kind: String
    var task_id: Int
}

enum Corpus {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let train = repo.deletingLastPathComponent().appendingPathComponent("shared/data/mbpp/train.jsonl")

    static func generate() throws -> [CorpusEntry] {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("syntax-corpus-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: out) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [repo.appendingPathComponent("scripts/syntax-corpus.py").path, train.path, out.path]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CocoaError(.fileReadUnknown) }
        let text = try String(contentsOf: out, encoding: .utf8)
        let decoder = JSONDecoder()
        return try text.split(separator: "\n").map { try decoder.decode(CorpusEntry.self, from: Data($0.utf8)) }
    }
}

@Suite struct CorpusTests {
    @Test(.enabled(if: Prerequisite.mbpp.shouldRun)) func boundsOnMBPPCorpus() throws {
        try Prerequisite.mbpp.require()
        let corpus = try Corpus.generate()
        let parser = try PythonParser()
        var prefixes = 0, prefixesBroken = 0, mutants = 0, caught = 0
        var missedByKind: [String: (Int, Int)] = [:]
        var falseAlarms: [String] = [], misses: [String] = []
        for entry in corpus {
            let verdict = parser.parse(entry.source).report.verdict
            if entry.expect == "not_broken" {
                prefixes += 1
                if verdict == .broken {
                    prefixesBroken += 1
                    falseAlarms.append(entry.source)
                }
            } else {
                mutants += 1
                var k = missedByKind[entry.kind] ?? (0, 0)
                k.1 += 1
                if verdict == .broken { caught += 1 } else { k.0 += 1; misses.append(entry.kind + "\n" + entry.source) }
                missedByKind[entry.kind] = k
            }
        }
        let brokenRate = Double(prefixesBroken) / Double(max(prefixes, 1))
        let catchRate = Double(caught) / Double(max(mutants, 1))
        print("syntax corpus: \(prefixes) prefixes, \(prefixesBroken) broken (\(String(format: "%.2f", brokenRate * 100))%); "
              + "\(mutants) mutants, \(caught) caught (\(String(format: "%.2f", catchRate * 100))%)")
        for (kind, (missed, total)) in missedByKind.sorted(by: { $0.key < $1.key }) {
            print("  \(kind): missed \(missed)/\(total)")
        }
        if ProcessInfo.processInfo.environment["SYNTAX_CORPUS_DUMP"] != nil {
            for s in falseAlarms.prefix(15) { print("--- FALSE ALARM\n\(s)") }
            for s in misses.shuffled().prefix(25) { print("--- MISS \(s)") }
        }
        #expect(prefixes > 1000)
        #expect(mutants > 1000)
        #expect(brokenRate <= 0.01, "valid prefixes marked broken: \(prefixesBroken)/\(prefixes)")
        #expect(catchRate >= 0.85, "mutants caught: \(caught)/\(mutants)")
    }
}
