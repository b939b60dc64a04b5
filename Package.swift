// swift-tools-version: 6.0
import PackageDescription

// One module per job; protocols at the seams. The planner (QStar) knows
// nothing about code, HTTP or sockets; the executable is a thin layer of
// subcommands over the libraries.
let package = Package(
    name: "qcode",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "qcode", targets: ["qcode"]),
        .executable(name: "qcode-jail", targets: ["qcode-jail"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // config.toml: a maintained TOML parser (toml++ inside) instead of a hand-written subset;
        // it adds ~35 s of CPU to a cold debug build (BENCHMARKS.md), swift-configuration has no TOML provider.
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // System libraries (Debian: libtree-sitter-dev, libcurl4-openssl-dev).
        .systemLibrary(name: "CTreeSitter", path: "Sources/CTreeSitter", pkgConfig: "tree-sitter",
                       providers: [.apt(["libtree-sitter-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        // The tree-sitter-python grammar, fetched (pinned, hash-checked) by scripts/bootstrap.
        .target(name: "TreeSitterPython", path: "grammars/tree-sitter-python",
                sources: ["src/parser.c", "src/scanner.c"],
                publicHeadersPath: "include",
                cSettings: [.headerSearchPath("src"), .unsafeFlags(["-w"])]),
        // The jail launcher: namespaces, rlimits and a seccomp filter around python3.
        .executableTarget(name: "qcode-jail", path: "sandbox",
                          exclude: ["README.md"],
                          cSettings: [.define("_GNU_SOURCE")],
                          linkerSettings: [.linkedLibrary("seccomp"), .unsafeFlags(["-static-stdlib", "-Xlinker", "--as-needed"])]),

        // Shared by every module: the cost ledger, seeds, time, JSON style, atomic writes.
        .target(name: "Basics"),
        .target(name: "QStar", dependencies: ["Basics", .product(name: "HeapModule", package: "swift-collections")]),
        .target(name: "PythonSyntax", dependencies: ["CTreeSitter", "TreeSitterPython"]),
        .target(name: "Sandbox", dependencies: ["Basics"]),
        .target(name: "Policy", dependencies: ["Basics", "CCurl"]),
        .target(name: "CodeDomain", dependencies: ["Basics", "QStar", "PythonSyntax", "Sandbox", "Policy"]),
        .target(name: "QVM", dependencies: ["Basics", "QStar", "CodeDomain", "PythonSyntax"],
                exclude: ["README.md"], resources: [.copy("Resources/default.qvm")]),
        .target(name: "RPC", dependencies: ["Basics"]),
        .target(name: "Daemon", dependencies: [
            "Basics", "RPC", "QStar", "CodeDomain", "Policy", "Sandbox", "PythonSyntax", "QVM",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        // The LSP server editors start (`qcode lsp`): documents, code actions, progress, edits; solves go to the daemon.
        .target(name: "LSP", dependencies: ["Basics", "RPC", "CodeDomain", "PythonSyntax", "Daemon"]),
        .executableTarget(name: "qcode", dependencies: [
            "Basics", "QStar", "CodeDomain", "PythonSyntax", "Sandbox", "Policy", "QVM", "RPC", "Daemon", "LSP",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Doubles and helpers every test target shares: scripted models and verifiers, paths, prerequisites.
        .target(name: "TestSupport", dependencies: ["Basics", "QStar", "CodeDomain", "Policy", "Sandbox"],
                path: "Tests/TestSupport"),
        .testTarget(name: "QStarTests", dependencies: ["QStar", "TestSupport"]),
        .testTarget(name: "PythonSyntaxTests", dependencies: ["PythonSyntax", "TestSupport"]),
        .testTarget(name: "SandboxTests", dependencies: ["Sandbox", "TestSupport", "qcode-jail"]),
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "TestSupport", "qcode-jail"]),
        .testTarget(name: "CodeDomainTests", dependencies: ["CodeDomain", "TestSupport", "qcode-jail"]),
        .testTarget(name: "RPCTests", dependencies: ["RPC"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "RPC", "CodeDomain", "Policy", "Sandbox", "QStar", "QVM",
                                                        "TestSupport", "qcode-jail"]),
        .testTarget(name: "QVMTests", dependencies: ["QVM", "CodeDomain", "QStar", "Policy", "Sandbox", "TestSupport"]),
        // qcode lsp: in-process against an in-process daemon, and the built binary over stdio.
        .testTarget(name: "LSPTests", dependencies: ["LSP", "Daemon", "RPC", "CodeDomain", "Policy", "Sandbox", "TestSupport",
                                                     "qcode", "qcode-jail"]),
        // The Neovim plugin (editors/nvim) in a real headless Neovim, against the built qcode.
        .testTarget(name: "EditorTests", dependencies: ["TestSupport", "Policy", "qcode", "qcode-jail"]),
        // The qcode executable itself, run as a user runs it.
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "CodeDomain", "qcode", "qcode-jail"]),
    ],
    swiftLanguageModes: [.v6]
)
