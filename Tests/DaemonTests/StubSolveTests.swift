import Basics
import CodeDomain
import Foundation
import Policy
import RPC
import Sandbox
import Testing
import TestSupport
@testable import Daemon

/// `qcode/solve` on a function stub: the module as text (an editor's buffer) or as a
/// file, the whole function and a minimal edit back.
@Suite struct StubSolveTests {
    static let module = "import math\n\n\ndef double(x):\n    \"\"\"Twice x.\n\n    >>> double(2)\n    4\n    \"\"\"\n    ...\n\n\ndef other():\n    return 1\n"

    /// Answers every program request with a body for `double`.
    struct BodyModel: LanguageModel {
        func complete(_ request: CompletionRequest) async throws -> CompletionResponse {
            let text = request.stop == ["\n"] ? "    return x * 2" : "    return x * 2\n\n\nprint(double(2))\n```"
            let choice = CompletionChoice(text: text, tokenLogprobs: [-0.1], finish: .stop, tokens: 4)
            return CompletionResponse(choices: Array(repeating: choice, count: request.n), cost: Cost(llmCalls: 1, generatedTokens: 4))
        }
    }

    func client() async throws -> RPCClient {
        let server = makeServer(BodyModel(), verifier: { _ in try Jail() })
        let client = try server.connectInProcess()
        try await client.initialize()
        return client
    }

    @Test func aStubInABufferComesBackAsAFunctionAndAnEdit() async throws {
        let client = try await client()
        defer { client.close() }
        let result = try await client.request("qcode/solve", ["source": .string(Self.module), "function": "double",
                                                              "options": ["method": "greedy"]]).decode(SolveResult.self)
        #expect(result.solved && result.verified && result.tests == "the docstring of double" && result.total == 1)
        #expect(result.function == "def double(x):\n    \"\"\"Twice x.\n\n    >>> double(2)\n    4\n    \"\"\"\n    return x * 2\n")
        #expect(result.edit == TextEdit(range: .init(start: .init(line: 9, character: 0), end: .init(line: 10, character: 0)),
                                        newText: "    return x * 2\n"))
        #expect(result.edit?.applied(to: Self.module) == result.program)
        #expect(result.asserts.map(\.kind) == ["example"])
    }

    @Test func aFileOnTheDaemonsMachineFindsItsTests() async throws {
        let dir = try tempDirectory("stub-daemon")
        let file = dir.appendingPathComponent("mathy.py")
        try Self.module.replacingOccurrences(of: "\n\n    >>> double(2)\n    4\n    ", with: "")
            .write(to: file, atomically: true, encoding: .utf8)
        try "import pytest\nfrom mathy import double\n\n@pytest.mark.parametrize('x', [0, 1, 5])\ndef test_double(x):\n    assert double(x) == x + x\n"
            .write(to: dir.appendingPathComponent("test_mathy.py"), atomically: true, encoding: .utf8)
        let client = try await client()
        defer { client.close() }
        let result = try await client.request("qcode/solve", ["file": .string(file.path), "function": "double",
                                                              "options": ["method": "greedy"]]).decode(SolveResult.self)
        #expect(result.solved && result.total == 3 && result.tests == dir.appendingPathComponent("test_mathy.py").path)
        #expect(result.asserts.map(\.source) == ["test_double[0]", "test_double[1]", "test_double[5]"])
    }

    @Test func badStubRequestsAreInvalidParamsThatSayWhy() async throws {
        let client = try await client()
        defer { client.close() }
        let cases: [([String: JSONValue], String)] = [
            (["source": .string(Self.module), "function": "nope"], "has no function `nope`; it defines: double, other"),
            (["source": .string(Self.module), "function": "other"], "already has a body (`return 1`)"),
            (["source": .string(Self.module)], "function: name the function"),
            (["function": "double"], "a stub needs the module"),
            (["file": "relative.py", "function": "double"], "file must be an absolute path"),
            (["file": "/nonexistent/qcode/x.py", "function": "double"], "cannot read /nonexistent/qcode/x.py"),
            (["source": .string(Self.module), "function": "double", "task": try JSONValue.encoding(addSpec)], "not both"),
            (["source": .string("def f(:\n"), "function": "f"], "does not parse"),
            (["source": .string(Self.module), "function": "double", "functoin": "x"], "functoin"),
        ]
        for (params, message) in cases {
            let e = await responseError { try await client.request("qcode/solve", .object(params)) }
            #expect(e?.code == ErrorCode.invalidParams && e?.message.contains(message) == true, "\(params): \(e?.message ?? "")")
        }
    }
}
