import ArgumentParser

@main
struct QCode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qcode",
        abstract: "Code generation by Q* search.",
        subcommands: [Solve.self, Bench.self, Check.self, TestCommand.self, Sample.self, Doctor.self,
                      Rollouts.self, TrainQVM.self, Serve.self, Status.self, Stop.self, Config.self])
}
