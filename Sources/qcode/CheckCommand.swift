import ArgumentParser

// Owned by the PythonSyntax work (issue 3).
struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the syntax verdict of a whole or partial Python program.")
}
