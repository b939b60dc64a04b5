import Basics
import CodeDomain
import Foundation
import Testing
import TestSupport

/// `qcode solve MODULE --function NAME` on the three example modules, as a user runs it,
/// with a fake LLM endpoint that writes a known body and the real jail judging it.
@Suite(.serialized) struct StubCLITests {
    struct Example {
        var module: String
        var function: String
        /// Where the function starts and what follows it in the file: every byte outside stays.
        var start: String
        var after: String
        var body: String
    }

    static let textstats = Example(
        module: "examples/textstats/textstats.py", function: "top_words", start: "def top_words", after: "\n\ndef summary",
        body: "    counts = Counter(words(text))\n    return sorted(counts.items(), key=lambda p: (-p[1], p[0]))[:n]\n")
    static let slugs = Example(
        module: "examples/slugs/slugs.py", function: "slugify", start: "def slugify", after: "\n\nclass Article",
        body: "    text = ascii_fold(title).lower()\n    return re.sub(r\"[^a-z0-9]+\", sep, text).strip(sep)[:MAX_LENGTH]\n")
    static let config = Example(
        module: "examples/deploy_config/deploy_config.py", function: "parse_bool", start: "def parse_bool", after: "\n\ndef from_env",
        body: "    v = value.strip().lower()\n    if v in ('1', 'true', 'yes', 'on'):\n        return True\n"
            + "    if v in ('0', 'false', 'no', 'off', ''):\n        return False\n    raise ValueError(value)\n")

    /// Solves `example` with the fake model answering `body`; returns the exit status and the JSON result.
    func solve(_ example: Example, body: String? = nil, extra: [String] = ["--no-daemon"]) async throws -> (Int32, [String: Any], String) {
        let endpoint = try await FakeEndpoint(program: (body ?? example.body) + "\n\nprint(\(example.function))\n```")
        defer { endpoint.stop() }
        let out = try await qcode(["solve", example.module, "--function", example.function, "--endpoint", endpoint.url,
                                   "--api", "llama", "--method", "greedy", "--json"] + extra)
        let json = (try? JSONSerialization.jsonObject(with: Data(out.output.utf8)) as? [String: Any]) ?? [:]
        return (out.status, json, out.output)
    }

    /// The module after the solve differs from the file only inside the function.
    func expectOnlyTheFunctionChanged(_ example: Example, _ json: [String: Any]) throws {
        let original = try String(contentsOf: repoRoot.appendingPathComponent(example.module), encoding: .utf8)
        let program = try #require(json["program"] as? String)
        let start = try #require(original.range(of: example.start)), after = try #require(original.range(of: example.after))
        #expect(program.hasPrefix(original[..<start.lowerBound]), "bytes before the function changed")
        #expect(program.hasSuffix(original[after.lowerBound...]), "bytes after the function changed")
        let function = try #require(json["function"] as? String)
        #expect(function.hasPrefix(example.start) && function.hasSuffix(example.body), "\(function)")
        // The edit an editor applies gives exactly that program.
        let edit = try JSONCoding.decoder.decode(TextEdit.self, from: JSONSerialization.data(withJSONObject: try #require(json["edit"])))
        #expect(edit.applied(to: original) == program)
        #expect(edit.newText == example.body || edit.newText.hasSuffix(example.body))
    }

    @Test func aDocstringWithDoctestsIsTheTest() async throws {
        let (status, json, output) = try await solve(Self.textstats)
        #expect(status == 0, "\(output)")
        #expect(json["verified"] as? Bool == true && json["passed"] as? Int == 3 && json["total"] as? Int == 3)
        #expect(json["tests"] as? String == "the docstring of top_words")
        let checks = json["asserts"] as? [[String: Any]] ?? []
        #expect(checks.map { $0["kind"] as? String } == ["example", "example", "example"])
        try expectOnlyTheFunctionChanged(Self.textstats, json)
    }

    @Test func aPytestFileBesideTheModuleGivesOneVerdictPerCase() async throws {
        let (status, json, output) = try await solve(Self.slugs)
        #expect(status == 0, "\(output)")
        let checks = json["asserts"] as? [[String: Any]] ?? []
        #expect(checks.map { $0["source"] as? String } == [
            "test_slugify[Hello World-hello-world]", "test_slugify[  Many   spaces  -many-spaces]",
            "test_slugify[Cr\\xe8me br\\xfbl\\xe9e-creme-brulee]", "test_slugify[Rock & Roll!-rock-roll]",
            "test_separator[_]", "test_separator[.]", "test_length"])
        #expect(json["tests"] as? String == repoRoot.appendingPathComponent("examples/slugs/test_slugs.py").path)
        try expectOnlyTheFunctionChanged(Self.slugs, json)
    }

    @Test func aFailingParametrizeCaseIsReportedFromTheJail() async throws {
        let wrong = "    return re.sub(r\"[^a-z0-9]+\", sep, title.lower()).strip(sep)[:MAX_LENGTH]\n"
        let (status, json, output) = try await solve(Self.slugs, body: wrong)
        #expect(status == 1, "\(output)")
        let checks = json["asserts"] as? [[String: Any]] ?? []
        let failed = checks.filter { $0["passed"] as? Bool == false }
        #expect(failed.map { $0["source"] as? String } == ["test_slugify[Cr\\xe8me br\\xfbl\\xe9e-creme-brulee]"], "\(checks)")
        #expect(failed.first?["actual"] as? String == "'cr-me-br-l-e'" && failed.first?["expected"] as? String == "'creme-brulee'")
        #expect(json["passed"] as? Int == 6 && json["total"] as? Int == 7)
        // Humans see the failing case by name.
        let endpoint = try await FakeEndpoint(program: wrong + "```")
        defer { endpoint.stop() }
        let human = try await qcode(["solve", Self.slugs.module, "--function", "slugify", "--endpoint", endpoint.url, "--api", "llama",
                                     "--method", "greedy", "--no-daemon"])
        #expect(human.status == 1 && human.output.contains("# FAIL 6/7 visible tests"), "\(human.output)")
        #expect(human.output.contains("#   ✗ test_slugify[Cr\\xe8me br\\xfbl\\xe9e-creme-brulee]: AssertionError: assert slugify(title) == expected (line 13): got 'cr-me-br-l-e', expected 'creme-brulee'"),
                "\(human.output)")
    }

    @Test func withoutTestsTheAnswerIsMarkedUnverified() async throws {
        let (status, json, output) = try await solve(Self.config)
        #expect(status == 0, "\(output)")
        #expect(json["verified"] as? Bool == false && json["passed"] as? Int == 0 && json["total"] as? Int == 0)
        #expect(json["outcome"] as? String == "unverified" && json["tests"] == nil)
        try expectOnlyTheFunctionChanged(Self.config, json)
        let endpoint = try await FakeEndpoint(program: Self.config.body + "```")
        defer { endpoint.stop() }
        let human = try await qcode(["solve", Self.config.module, "--function", "parse_bool", "--endpoint", endpoint.url,
                                     "--api", "llama", "--method", "greedy", "--no-daemon"])
        #expect(human.output.contains("# UNVERIFIED: no tests found, nothing ran this program"), "\(human.output)")
    }

    @Test func throughTheDaemonTheAnswerIsTheSameAndWriteAppliesIt() async throws {
        let dir = try tempDirectory("stub-cli")
        let module = dir.appendingPathComponent("textstats.py")
        try FileManager.default.copyItem(at: repoRoot.appendingPathComponent(Self.textstats.module), to: module)
        let socket = tempSocketPath()
        defer { Task { _ = try? await qcode(["stop", "--socket", socket]) } }
        var copy = Self.textstats
        copy.module = module.path
        let (status, json, output) = try await solve(copy, extra: ["--socket", socket, "--write"])
        #expect(status == 0 && json["verified"] as? Bool == true && json["passed"] as? Int == 3, "\(output)")
        let written = try String(contentsOf: module, encoding: .utf8)
        #expect(written == json["program"] as? String)
        // Written once, the function is no longer a stub: a second solve says so.
        let again = try await qcode(["solve", module.path, "--function", "top_words", "--no-daemon", "--endpoint", "http://127.0.0.1:9"])
        #expect(again.status == 2 && again.output.contains("already has a body"), "\(again.output)")
        _ = try await qcode(["stop", "--socket", socket])
    }

    @Test func badInputIsNamed() async throws {
        let missing = try await qcode(["solve", Self.slugs.module, "--function", "nope", "--no-daemon"])
        #expect(missing.status == 2 && missing.output.contains("has no function `nope`; it defines: ascii_fold, slugify, Article.__init__, Article.url"),
                "\(missing.output)")
        let noModule = try await qcode(["solve", "--function", "f", "--no-daemon"])
        #expect(noModule.status == 64 && noModule.output.contains("--function needs the module"), "\(noModule.output)")
    }
}
