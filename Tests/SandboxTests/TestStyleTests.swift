import Foundation
import Testing
@testable import Sandbox

/// Tests as programmers write them: pytest-style files and doctest examples, judged by
/// the same judge as top-level asserts, one verdict per test function (per
/// `parametrize` case) or per example.
@Suite("Test functions and doctests")
struct TestStyleTests {
    static let module = """
        import math

        def slugify(text, sep="-"):
            return sep.join(text.lower().split())

        def area(r):
            if r < 0:
                raise ValueError("negative radius")
            return math.pi * r * r

        class Shape(Exception):
            pass

        def check_shape(name):
            raise Shape("unknown shape " + name)

        def shout(s):
            print(s.upper() + "!")
        """

    static let pytestFile = """
        import pytest
        from shapes import slugify
        from shapes import area as circle_area
        import shapes

        @pytest.fixture
        def words():
            yield ["Hello", "World"]

        @pytest.mark.parametrize("text, expected", [
            ("Hello World", "hello-world"),
            ("  many   spaces ", "many-spaces"),
            pytest.param("Keep_Under", "keep-under", id="underscore"),
        ])
        def test_slugify(text, expected):
            assert slugify(text) == expected

        @pytest.mark.parametrize("sep", ["_", "."])
        @pytest.mark.parametrize("n", [1, 2])
        def test_separator(n, sep):
            assert slugify(" ".join(["a"] * n), sep=sep) == sep.join(["a"] * n)

        def test_with_fixture(words):
            assert slugify(" ".join(words)) == "hello-world"

        def test_area():
            assert circle_area(1) == pytest.approx(3.14159, rel=1e-3)
            with pytest.raises(ValueError, match="negative"):
                shapes.area(-1)
            with pytest.raises(shapes.Shape):
                shapes.check_shape("blob")

        class TestClass:
            def test_method(self):
                assert slugify("A") in ("a", "b")

        @pytest.mark.skip(reason="not today")
        def test_skipped():
            assert False

        def test_unrelated():
            assert 1 + 1 == 2
        """

    func run(_ program: String, _ tests: String, kind: TestKind, select: String? = nil, firstLine: Int = 1) async throws -> TestReport {
        try await Jail().run(JailJob(program: program, tests: tests, kind: kind, module: "shapes", select: select,
                                     firstLine: firstLine))
    }

    @Test func eachTestFunctionAndParametrizeCaseIsOneVerdict() async throws {
        let r = try await run(Self.module, Self.pytestFile, kind: .pytest, select: "slugify")
        let ids = r.asserts.map(\.source)
        #expect(ids == ["test_slugify[Hello World-hello-world]", "test_slugify[  many   spaces -many-spaces]",
                        "test_slugify[underscore]", "test_separator[1-_]", "test_separator[1-.]", "test_separator[2-_]",
                        "test_separator[2-.]", "test_with_fixture", "TestClass::test_method"])
        #expect(r.asserts.allSatisfy { $0.kind == "test" })
        // One failing case, with the operands judged outside the program.
        #expect(r.outcome == .failed && r.passed == 8 && r.total == 9, "\(r.asserts.map { $0.message ?? "" }) \(r.stderr)")
        let failing = try #require(r.asserts.first { !$0.passed })
        #expect(failing.source == "test_slugify[underscore]")
        #expect(failing.actual == "'keep_under'" && failing.expected == "'keep-under'")
        #expect(failing.message == "assert slugify(text) == expected (line 16): got 'keep_under', expected 'keep-under'")
    }

    @Test func withoutSelectionEveryTestRunsAndSkipsAreLeftOut() async throws {
        let r = try await run(Self.module, Self.pytestFile, kind: .pytest)
        #expect(r.asserts.map(\.source).contains("test_area"))
        #expect(r.asserts.map(\.source).contains("test_unrelated"))
        #expect(!r.asserts.map(\.source).contains("test_skipped"))
        #expect(r.asserts.first { $0.source == "test_area" }?.passed == true, "\(r.asserts.map { $0.message ?? "" })")
    }

    @Test func aTestFileThatReachesNothingIsAnError() async throws {
        let r = try await run(Self.module, "def test_x():\n    assert True\n", kind: .pytest, select: "slugify")
        #expect(r.outcome == .error && r.stderr.contains("no test function in the test file reaches `slugify`"))
    }

    @Test func exceptionsInsideATestNameTheLine() async throws {
        let r = try await run(Self.module, "import shapes\n\ndef test_neg():\n    x = 1\n    shapes.area(-x)\n", kind: .pytest)
        #expect(r.outcome == .failed)
        #expect(r.asserts[0].exceptionType == "ValueError" && r.asserts[0].message == "line 5: negative radius")
    }

    @Test func humanEvalCheckRunsAsATestFunction() async throws {
        let check = """
            METADATA = {'author': 'x'}

            def check(candidate):
                assert candidate("A b") == "a-b"
                assert candidate("A  B  c") == "a-b-c"
                for i in range(20):
                    assert candidate("x " * i).count("-") == max(0, i - 1)

            def test_check():
                check(slugify)
            """
        let good = try await run(Self.module, check, kind: .pytest)
        #expect(good.outcome == .passed && good.total == 1, "\(good.asserts.map { $0.message ?? "" })")
        let bad = try await run(Self.module.replacingOccurrences(of: "text.lower()", with: "text"), check, kind: .pytest)
        #expect(bad.outcome == .failed && bad.asserts[0].message == "assert candidate(\"A b\") == \"a-b\" (line 4): got 'A-b', expected 'a-b'")
    }

    @Test func doctestExamplesAreComparedAsDoctestDoes() async throws {
        let docstring = #"""
            """Examples.

                >>> slugify("Hello World")
                'hello-world'
                >>> slugify("a b", sep="_")
                'a-b'
                >>> words = ["x", "Y"]
                >>> slugify(" ".join(words))  # doctest: +ELLIPSIS
                'x...'
                >>> shout("hi")
                HI!
                >>> area(-1)
                Traceback (most recent call last):
                  ...
                ValueError: negative radius
                >>> area(0) == 0
                True
                >>> [slugify(w) for w in ["A", "B"]]
                ['a',
                 'b']
                """
            """#
        let r = try await run(Self.module, docstring, kind: .doctest, firstLine: 10)
        #expect(r.asserts.map(\.source) == [">>> slugify(\"Hello World\")", ">>> slugify(\"a b\", sep=\"_\")",
                                             ">>> slugify(\" \".join(words))  # doctest: +ELLIPSIS", ">>> shout(\"hi\")",
                                             ">>> area(-1)", ">>> area(0) == 0", ">>> [slugify(w) for w in [\"A\", \"B\"]]"])
        #expect(r.asserts.map(\.line) == [12, 14, 17, 19, 21, 25, 27])
        #expect(r.asserts.map(\.passed) == [true, false, true, true, true, true, false], "\(r.asserts.map { $0.message ?? "" })")
        #expect(r.asserts[1].message == "got 'a_b', expected 'a-b'")
        // No NORMALIZE_WHITESPACE: the line break in the expected output counts.
        #expect(r.asserts[6].expected == "['a',\n 'b']")
        #expect(r.outcome == .failed)
    }

    @Test func aDocstringWithoutExamplesHasNoChecks() async throws {
        let r = try await run(Self.module, "\"\"\"Just words.\"\"\"", kind: .doctest)
        #expect(r.outcome == .error && r.total == 0)
    }

    @Test func theModuleIsNotMainAndNeedNotBeImportable() async throws {
        let program = "ran = []\nif __name__ == '__main__':\n    ran.append('main')\nname = __name__\n"
        let r = try await run(program, "import shapes\ndef test_name():\n    assert shapes.name == 'shapes'\n    assert ran == []\n",
                              kind: .pytest)
        #expect(r.outcome == .passed, "\(r.asserts.map { $0.message ?? "" })")
    }
}
