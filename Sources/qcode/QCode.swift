import ArgumentParser
import Foundation

@main
struct QCode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qcode",
        abstract: "Code generation by Q* search.",
        discussion: "Exit status: 0 success; 1 a negative answer (a program that fails its tests, a broken syntax verdict); "
            + "2 an error (bad input, configuration, an unreachable LLM, a crash); 64 a usage error.",
        subcommands: [Solve.self, Bench.self, Check.self, TestCommand.self, Sample.self, Doctor.self,
                      Rollouts.self, TrainQVM.self, Serve.self, Status.self, Stop.self, Config.self, LSPServe.self])

    /// Argument errors keep ArgumentParser's usage output; every other error
    /// is one line on stderr and exit status 2, so scripts (and `make demo`)
    /// can tell "the model was wrong" (1) from "something broke" (2).
    static func main() async {
        let command: any ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do {
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                var sync = command
                try sync.run()
            }
        } catch let error as ExitCode {
            exit(withError: error)
        } catch where exitCode(for: error) != .failure {
            exit(withError: error)  // help, usage and validation errors: ArgumentParser's output and codes
        } catch {
            FileHandle.standardError.write(Data("qcode: \(error)\n".utf8))
            Foundation.exit(2)
        }
    }
}
