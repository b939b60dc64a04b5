import ArgumentParser

// Owned by the Sandbox work (issue 4).
struct TestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "test", abstract: "Run a solution against a test file in the jail.")
}
