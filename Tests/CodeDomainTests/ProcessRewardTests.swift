import Foundation
import PythonSyntax
import Testing
import TestSupport
@testable import CodeDomain

@Suite struct ProcessRewardTests {
    @Test func entryPointFromAssert() {
        #expect(EntryPoint.firstCall(in: "assert f(1,2)==3") == EntryPoint(name: "f", arity: 2))
        #expect(EntryPoint.firstCall(in: "assert first_repeated_char(\"a(b,c\") == \"None\"") == EntryPoint(name: "first_repeated_char", arity: 1))
        #expect(EntryPoint.firstCall(in: "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))")
                == EntryPoint(name: "similar_elements", arity: 2))
        #expect(EntryPoint.firstCall(in: "assert math.isclose(area(2), 12.56, rel_tol=0.001)") == EntryPoint(name: "area", arity: 1))
        #expect(EntryPoint.firstCall(in: "assert g() == []") == EntryPoint(name: "g", arity: 0))
        #expect(EntryPoint.firstCall(in: "assert h([1, 2], key=3,) == 1") == EntryPoint(name: "h", arity: 2))
        #expect(EntryPoint.firstCall(in: "assert 1 == 1") == nil)
        // Strings, comments and attribute calls are not calls to the entry point.
        #expect(EntryPoint.firstCall(in: "assert s.split('f(x)') == g('a', b'c')  # h(1)") == EntryPoint(name: "g", arity: 2))
        #expect(EntryPoint.firstCall(in: "assert f(\n    3) == 4") == EntryPoint(name: "f", arity: 1))
        #expect(EntryPoint.call(to: "add", in: "assert helper(add(1, 2)) == 3") == EntryPoint(name: "add", arity: 2))
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

    static let train = mbppDir.appendingPathComponent("train.jsonl")

    /// On real tasks, the entry point read from the first visible test is
    /// defined by the reference solution with a fitting arity.
    @Test(.enabled(if: Prerequisite.mbpp.shouldRun)) func entryPointsOfMBPPSolutions() throws {
        try Prerequisite.mbpp.require()
        let parser = try PythonParser()
        var total = 0, matched = 0
        var misses: [String] = []
        for line in try String(contentsOf: Self.train, encoding: .utf8).split(separator: "\n") {
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let tests = obj["test_list"] as! [String]
            total += 1
            let ep = EntryPoint.firstCall(in: tests[0])
            let facts = codeFacts(parser.parse(obj["code"] as! String + "\n"), entryPoint: ep)
            if facts.definesEntryPoint && facts.entryPointArityMatches { matched += 1 } else { misses.append(tests[0]) }
        }
        #expect(total > 300)
        #expect(Double(matched) / Double(total) >= 0.97, "\(matched)/\(total); e.g. \(misses.prefix(5))")
    }
}
