import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// Glibc's module map hides these behind _GNU_SOURCE; both are plain C ABI
// functions, and CLOEXEC at creation matters when runs spawn concurrently.
@_silgen_name("memfd_create") private func c_memfd_create(_ name: UnsafePointer<CChar>, _ flags: UInt32) -> Int32
@_silgen_name("pipe2") private func c_pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32
private let mfdCloexec: UInt32 = 1

/// Everything the launcher produced.
struct LauncherOutput: Sendable {
    var stdout: Data
    var stderr: Data
    var results: Data
    var status: Data
    var exitStatus: Int32
}

/// Holds the launcher's pid so cancellation can stop it from another thread.
/// SIGTERM first: the launcher kills the jail at once and still removes what it made
/// (degraded mode's work dir, a cgroup). SIGKILL follows if it lingers; then init
/// dies by PDEATHSIG, and with it the PID namespace.
final class LauncherHandle: Sendable {
    private struct State {
        var pid: pid_t = 0
        var cancelled: ContinuousClock.Instant?
        var killed = false
        var reaped = false
    }

    private let state = Mutex(State())

    /// Records the pid; returns false when cancellation came first (the caller then kills it).
    func started(_ p: pid_t) -> Bool {
        state.withLock { s in
            s.pid = p
            return s.cancelled == nil
        }
    }

    func cancel() {
        // Signals go out under the lock, so they can never race markReaped() and hit a reused pid.
        state.withLock { s in
            if s.cancelled == nil { s.cancelled = .now }
            if s.pid > 0 && !s.reaped { kill(s.pid, SIGTERM) }
        }
    }

    /// SIGKILL for a launcher that has not gone within `grace` of cancellation.
    func escalate(after grace: Duration) {
        state.withLock { s in
            guard let since = s.cancelled, !s.killed, s.pid > 0, !s.reaped, ContinuousClock.now - since > grace else { return }
            s.killed = true
            kill(s.pid, SIGKILL)
        }
    }

    /// Before waitpid: after it the pid may be reused, so no kill may follow.
    func markReaped() {
        state.withLock { $0.reaped = true }
    }

    var isCancelled: Bool {
        state.withLock { $0.cancelled != nil }
    }
}

/// Spawns the launcher with fds 0 (job, a memfd), 1, 2, 3 (results) and 4 (status),
/// and drains the four pipes on a dedicated thread until they close. Blocking
/// here (poll, waitpid) never runs on Swift's cooperative pool.
enum Spawner {
    private static let queue = DispatchQueue(label: "qcode.jail.io", attributes: .concurrent)

    static func run(executable: String, arguments: [String], stdin: Data, safetyTimeout: Double,
                    handle: LauncherHandle) async throws -> LauncherOutput {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<LauncherOutput, Error>) in
            queue.async {
                cont.resume(with: Result { try runBlocking(executable: executable, arguments: arguments, stdin: stdin,
                                                           safetyTimeout: safetyTimeout, handle: handle) })
            }
        }
    }

    /// An fd ≥ 10 so that dup2 onto 0...4 in the child can never clobber another source fd.
    private static func high(_ fd: Int32) -> Int32 {
        let h = fcntl(fd, F_DUPFD_CLOEXEC, 10)
        close(fd)
        return h
    }

    /// posix_spawn of `executable` with `fds[i]` as its fd i (nothing else is inherited:
    /// qcode's fds are close-on-exec), a clean signal mask and dispositions, a process
    /// group of its own (a terminal's Ctrl-C is qcode's to handle, not the jail's) and
    /// only PATH in its environment.
    static func spawn(_ executable: String, arguments: [String], fds: [Int32]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (i, fd) in fds.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, Int32(i)) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let envp: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/bin:/bin"), nil]
        defer { for p in envp { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attr, argv, envp)
        guard rc == 0 else {
            // Gone since the jail was set up (a rebuild or `make clean` under a running daemon): say so.
            if rc == ENOENT || rc == EACCES { throw JailError.launcherNotFound(searched: [executable]) }
            throw JailError.spawnFailed("posix_spawn \(executable)", errno: rc)
        }
        return pid
    }

    static func runBlocking(executable: String, arguments: [String], stdin: Data, safetyTimeout: Double,
                            handle: LauncherHandle) throws -> LauncherOutput {
        // The job goes in a memfd: no writer thread, no pipe-capacity deadlock.
        let memfd = c_memfd_create("qcode-job", mfdCloexec)
        guard memfd >= 0 else { throw JailError.spawnFailed("memfd_create", errno: errno) }
        var closeList: [Int32] = []
        defer { for fd in closeList { close(fd) } }
        let jobFd = high(memfd)
        closeList.append(jobFd)
        let written = stdin.withUnsafeBytes { raw -> Int in
            var off = 0
            while off < raw.count {
                let n = write(jobFd, raw.baseAddress! + off, raw.count - off)
                if n < 0 { if errno == EINTR { continue }; return -1 }
                off += n
            }
            return off
        }
        guard written == stdin.count, lseek(jobFd, 0, SEEK_SET) == 0 else {
            throw JailError.spawnFailed("write job", errno: errno)
        }
        var readEnds: [Int32] = []
        var writeEnds: [Int32] = []
        for _ in 0..<4 {
            var p: [Int32] = [0, 0]
            guard c_pipe2(&p, O_CLOEXEC) == 0 else { throw JailError.spawnFailed("pipe", errno: errno) }
            readEnds.append(high(p[0]))
            writeEnds.append(high(p[1]))
        }
        closeList.append(contentsOf: writeEnds)

        let pid: pid_t
        do {
            pid = try spawn(executable, arguments: arguments, fds: [jobFd] + writeEnds)
        } catch {
            for fd in readEnds { close(fd) }
            throw error
        }
        for fd in closeList { close(fd) }
        closeList = readEnds
        if !handle.started(pid) { handle.cancel() }

        var buffers = [Data](repeating: Data(), count: 4)
        // The launcher caps what it relays; this is a second fence against a broken launcher.
        let caps = [8 << 20, 8 << 20, 8 << 20, 1 << 20]
        var open = readEnds.map { Optional($0) }
        let deadline = Date().addingTimeInterval(safetyTimeout)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while open.contains(where: { $0 != nil }) {
            handle.escalate(after: .seconds(2))
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { kill(pid, SIGKILL); break }
            var pfds = open.compactMap { $0 }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let n = poll(&pfds, nfds_t(pfds.count), Int32(min(remaining * 1000, 1000)) + 1)
            if n < 0 && errno != EINTR { break }
            for p in pfds where p.revents != 0 {
                guard let i = open.firstIndex(of: p.fd) else { continue }
                let got = read(p.fd, &chunk, chunk.count)
                if got < 0 && errno == EINTR { continue }
                if got <= 0 { open[i] = nil; continue }
                if buffers[i].count < caps[i] { buffers[i].append(contentsOf: chunk[0..<min(got, caps[i] - buffers[i].count)]) }
            }
        }
        // All pipes are closed: the launcher is gone or going. Mark first so no
        // kill can race with waitpid and hit a reused pid.
        handle.markReaped()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if handle.isCancelled { throw CancellationError() }
        return LauncherOutput(stdout: buffers[0], stderr: buffers[1], results: buffers[2], status: buffers[3],
                              exitStatus: status)
    }
}
