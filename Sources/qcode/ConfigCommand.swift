import ArgumentParser
import Daemon
import Foundation

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the effective configuration and where each value came from.",
        discussion: """
            Precedence: flags > QCODE_* environment variables > $XDG_CONFIG_HOME/qcode/config.toml > defaults. \
            The file holds `key = value` lines with the keys printed here; the variable for a key is \
            QCODE_ and the key in capitals (QCODE_SLOTS), the flag is the key with dashes (--slots).
            """)

    @Option(help: "The daemon's socket.")
    var socket: String?

    @OptionGroup var llm: LLMOptions

    @Option(help: "Solves run at once.")
    var maxConcurrentSolves: Int?

    @Option(help: "Solves that may wait.")
    var maxQueuedSolves: Int?

    func run() async throws {
        var flags = llm.configFlags
        if let socket { flags["socket"] = socket }
        if let maxConcurrentSolves { flags["max_concurrent_solves"] = String(maxConcurrentSolves) }
        if let maxQueuedSolves { flags["max_queued_solves"] = String(maxQueuedSolves) }
        do {
            print(try DaemonConfig.resolve(flags: flags).rendered)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
