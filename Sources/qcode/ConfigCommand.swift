import ArgumentParser
import Daemon
import Foundation

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the effective configuration and where each value came from.",
        discussion: """
            Precedence: flags > QCODE_* environment variables > $XDG_CONFIG_HOME/qcode/config.toml > defaults. \
            A key is written `key = value` in the file (TOML), QCODE_ and the key in capitals in the environment \
            (QCODE_SLOTS), and the key with dashes as a flag (--slots). An unknown key or variable is an error.

            Keys:
            \(ConfigKey.allCases.map { "  \($0.rawValue): \($0.help)" }.joined(separator: "\n"))
            """)

    @OptionGroup var daemonFlags: DaemonFlags
    @OptionGroup var llm: LLMOptions

    func run() async throws {
        print(try resolveConfiguration(llm.configFlags.merging(daemonFlags.configFlags) { $1 }).rendered)
    }
}
