import Foundation

/// One status line on stderr, redrawn in place; silent when stderr is not a
/// terminal so logs and pipes stay clean.
final class ProgressBar: Sendable {
    let enabled: Bool

    init(enabled: Bool = true) {
        self.enabled = enabled && isatty(STDERR_FILENO) == 1
    }

    func update(_ text: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[2K\(text.prefix(120))".utf8))
    }

    func clear() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
    }
}
