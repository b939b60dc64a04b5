import Foundation
import PythonSyntax
import Testing
@testable import CodeDomain

@Suite struct ProcessRewardTests {
    @Test func entryPointFromAssert() {
        #expect(entryPoint(fromTest: "assert f(1,2)==3") == EntryPoint(name: "f", arity: 2))
        #expect(entryPoint(fromTest: "assert first_repeated_char(\"a(b,c\") == \"None\"") == EntryPoint(name: "first_repeated_char", arity: 1))
        #expect(entryPoint(fromTest: "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))")
                == EntryPoint(name: "similar_elements", arity: 2))
        #expect(entryPoint(fromTest: "assert math.isclose(area(2), 12.56, rel_tol=0.001)") == EntryPoint(name: "area", arity: 1))
        #expect(entryPoint(fromTest: "assert g() == []") == EntryPoint(name: "g", arity: 0))
        #expect(entryPoint(fromTest: "assert h([1, 2], key=3,) == 1") == EntryPoint(name: "h", arity: 2))
        #expect(entryPoint(fromTest: "assert 1 == 1") == nil)
    }

    @Test func factsAndReward() throws {
        let parser = try PythonParser()
        let ep = EntryPoint(name: "add", arity: 2)
        let header = codeFacts(parser.parse("def add(a, b):\n"), entryPoint: ep)
        #expect(header == CodeFacts(verdict: .incomplete, definesEntryPoint: true, entryPointArityMatches: true, indentDepth: 1, lineCount: 1))
        let wrongArity = codeFacts(parser.parse("def add(a):\n    return a\n"), entryPoint: ep)
        #expect(wrongArity.verdict == .valid && wrongArity.definesEntryPoint && !wrongArity.entryPointArityMatches)
        let other = codeFacts(parser.parse("def sub(a, b):\n    return a - b\n"), entryPoint: ep)
        #expect(!other.definesEntryPoint && !other.entryPointArityMatches)
        let broken = codeFacts(parser.parse("def add(a, b):\n    return a + b)\n"), entryPoint: ep)
        #expect(broken.verdict == .broken)

        let values = ProcessRewardValues(valid: 0.5, incomplete: 0.25, broken: -2)
        #expect(processReward(header, values: values) == 0.25)
        #expect(processReward(wrongArity, values: values) == 0.5)
        #expect(processReward(broken, values: values) == -2)
        #expect(processReward(broken, values: ProcessRewardValues()) == -1)
        #expect(processReward(header, values: ProcessRewardValues()) == 0)
    }

    static let train = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data/mbpp/train.jsonl")

    /// On real tasks, the entry point read from the first visible test is
    /// defined by the reference solution with a fitting arity.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: train.path), "needs ../shared/data/mbpp/train.jsonl"))
    func entryPointsOfMBPPSolutions() throws {
        let parser = try PythonParser()
        var total = 0, matched = 0
        var misses: [String] = []
        for line in try String(contentsOf: Self.train, encoding: .utf8).split(separator: "\n") {
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let tests = obj["test_list"] as! [String]
            total += 1
            let ep = entryPoint(fromTest: tests[0])
            let facts = codeFacts(parser.parse(obj["code"] as! String + "\n"), entryPoint: ep)
            if facts.definesEntryPoint && facts.entryPointArityMatches { matched += 1 } else { misses.append(tests[0]) }
        }
        #expect(total > 300)
        #expect(Double(matched) / Double(total) >= 0.97, "\(matched)/\(total); e.g. \(misses.prefix(5))")
    }
}
