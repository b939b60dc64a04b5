import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The judge and program sides as marshalled bytecode (base64), ready for `Harness.loader`.
///
/// Compiling about 600 lines of Python costs ~10 ms of CPU per run; loading
/// marshalled code costs well under one. Bytecode is tied to the interpreter's
/// version, so it is made by that very interpreter, inside the jail (the input is
/// our own source, but Python only ever runs jailed), once per interpreter binary.
struct CompiledHarness: Sendable {
    var judge: String
    var program: String
    /// The interpreter's `sys.version`, which a warm pool's embedded interpreter must match.
    var version: String = ""
    /// The interpreter's shared library, "" when it has none (then there is no warm pool).
    var library: String = ""

    static func compile(with jail: Jail) async throws -> CompiledHarness {
        let source = Data((Harness.judgeSource + "\0" + Harness.programSource).utf8)
        var args = ["--wall", "60", "--cpu", "30"]
        for dir in jail.extraReadOnly { args += ["--ro", dir] }
        args += ["--", jail.interpreter, "-I", "-S", "-B", "-c", Harness.compiler]
        let output = try await Spawner.run(executable: jail.launcher.path, arguments: args, stdin: source,
                                           safetyTimeout: 70, handle: LauncherHandle())
        let status = try LauncherStatus.read(output)
        var lines = String(decoding: output.results, as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard status.ran, status.exitCode == 0, status.signal == 0, lines.count == 4,
              !lines[0].isEmpty, !lines[1].isEmpty else {
            let why = status.setupError.isEmpty ? String(decoding: output.stderr.suffix(500), as: UTF8.self) : status.setupError
            throw JailError.harnessUnavailable("compiling it with \(jail.interpreter) failed (exit \(status.exitCode), "
                                               + "signal \(status.signal)): \(why)")
        }
        // Argv as a whole has room for far more (a quarter of the stack limit), but keep
        // the harness well inside it: both sides travel in every run's command line.
        guard lines.allSatisfy({ $0.utf8.count < 1 << 20 }) else {
            throw JailError.harnessUnavailable("the compiled harness is larger than 1 MiB of base64 in argv; "
                                               + "shrink Harness.swift or pass it through a file")
        }
        func text(_ base64: String) -> String {
            Data(base64Encoded: base64).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        return CompiledHarness(judge: lines[0], program: lines[1], version: text(lines[2]), library: text(lines[3]))
    }
}

/// One compile per interpreter binary and process; concurrent first runs share it.
actor HarnessCache {
    static let shared = HarnessCache()
    private var entries: [String: Task<CompiledHarness, Error>] = [:]

    func compiled(for jail: Jail) async throws -> CompiledHarness {
        // The binary's identity, not just its path: an upgraded python3 gets fresh bytecode.
        var st = stat()
        let key = stat(jail.interpreter, &st) == 0
            ? "\(jail.interpreter) \(st.st_ino) \(st.st_size) \(st.st_mtim.tv_sec)" : jail.interpreter
        if let task = entries[key] { return try await task.value }
        let task = Task { try await CompiledHarness.compile(with: jail) }
        entries[key] = task
        do {
            return try await task.value
        } catch {
            entries[key] = nil // a failure (e.g. a cancelled first run) must not stick
            throw error
        }
    }
}
