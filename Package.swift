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
                          linkerSettings: [.linkedLibrary("seccomp")]),

        .target(name: "QStar", dependencies: [.product(name: "HeapModule", package: "swift-collections")]),
        .target(name: "PythonSyntax", dependencies: ["CTreeSitter", "TreeSitterPython"]),
        .target(name: "Sandbox"),
        .target(name: "Policy", dependencies: ["CCurl"]),
        .target(name: "CodeDomain", dependencies: ["QStar", "PythonSyntax", "Sandbox", "Policy"]),
        .target(name: "QVM", dependencies: ["QStar", "CodeDomain", "PythonSyntax", "Policy", "Sandbox"],
                exclude: ["README.md"], resources: [.copy("Resources/default.qvm")]),
        .target(name: "RPC"),
        .target(name: "Daemon", dependencies: [
            "RPC", "QStar", "CodeDomain", "Policy", "Sandbox", "PythonSyntax", "QVM",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "qcode", dependencies: [
            "QStar", "CodeDomain", "PythonSyntax", "Sandbox", "Policy", "QVM", "RPC", "Daemon",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "QStarTests", dependencies: ["QStar"]),
        .testTarget(name: "PythonSyntaxTests", dependencies: ["PythonSyntax"]),
        .testTarget(name: "SandboxTests", dependencies: ["Sandbox", "qcode-jail"]),
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "qcode-jail"]),
        .testTarget(name: "CodeDomainTests", dependencies: ["CodeDomain", "qcode-jail"]),
        .testTarget(name: "RPCTests", dependencies: ["RPC"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "RPC", "CodeDomain", "Policy", "Sandbox", "QStar", "qcode-jail"]),
        .testTarget(name: "QVMTests", dependencies: ["QVM", "CodeDomain", "QStar", "Policy", "Sandbox"]),
    ],
    swiftLanguageModes: [.v6]
)
