import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A framed JSON-RPC connection over a stream socket, or over a pair of pipes
/// (an LSP server's stdin and stdout).
///
/// Reads block on a dedicated thread (one per connection; cheap at the scale
/// of a few hundred clients) so a slow or silent peer never holds a thread of
/// Swift's small cooperative pool. Writes go through a serial queue, in order,
/// with a send timeout on sockets so a peer that stops reading is dropped
/// rather than stalling the daemon.
public final class Connection: Sendable {
    /// The descriptor read from (the socket itself, or the input pipe).
    public let fd: Int32
    /// The descriptor written to: `fd` for a socket.
    private let output: Int32
    private let isSocket: Bool
    public let maxFrame: Int
    private struct State {
        var closed = false
        var fdReleased = false
        /// A pipe connection's output, closed by `close()` while its reader still runs.
        var outputClosed = false
        var readerStarted = false
    }
    private let state = Mutex(State())
    private let writeQueue: DispatchQueue

    public init(fd: Int32, maxFrame: Int = FrameParser.defaultMaxFrame, sendTimeout: Double = 10) {
        self.fd = fd
        self.output = fd
        self.isSocket = true
        self.maxFrame = maxFrame
        self.writeQueue = DispatchQueue(label: "qcode.rpc.write.\(fd)")
        var tv = timeval(tv_sec: Int(sendTimeout), tv_usec: Int((sendTimeout - sendTimeout.rounded(.down)) * 1e6))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Frames read from `input` and written to `output`, two pipes (or a
    /// terminal): an LSP server's stdin and stdout. Writes block until the
    /// peer reads (there is no send timeout on a pipe); a peer that goes away
    /// fails them with EPIPE, so the process must ignore SIGPIPE.
    public init(input: Int32, output: Int32, maxFrame: Int = FrameParser.defaultMaxFrame) {
        self.fd = input
        self.output = output
        self.isSocket = false
        self.maxFrame = maxFrame
        self.writeQueue = DispatchQueue(label: "qcode.rpc.write.\(input)-\(output)")
    }

    deinit {
        let s = state.withLock { $0 }
        if !s.fdReleased { releaseDescriptors(s) }
    }

    /// Closes what this connection owns and has not closed yet.
    private func releaseDescriptors(_ s: State) {
        _ = Glibc.close(fd)
        if output != fd, !s.outputClosed { _ = Glibc.close(output) }
    }

    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Message bodies as they complete. Ends at end of stream; throws the
    /// `FrameError` that made the stream unreadable. Call once.
    public func bodies() -> AsyncThrowingStream<Data, any Error> {
        let (stream, continuation) = AsyncThrowingStream<Data, any Error>.makeStream()
        state.withLock { $0.readerStarted = true }
        let thread = Thread { [self] in
            var parser = FrameParser(maxFrame: maxFrame)
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            var failure: (any Error)?
            loop: while true {
                let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                do {
                    for body in try parser.push(chunk[0..<n]) { continuation.yield(body) }
                } catch {
                    failure = error
                    break loop
                }
            }
            if let failure {
                // The stream has lost its place: say why, then hang up.
                let answer = Message.response(id: nil, result: .failure(.parseError("\(failure)")))
                sendRaw(FrameParser.frame(answer.encoded()))
            }
            continuation.finish(throwing: failure)
            state.withLock { $0.closed = true }
            // Let queued writes (e.g. the error answering a bad frame) go out first.
            writeQueue.async { [self] in
                state.withLock {
                    if !$0.fdReleased { $0.fdReleased = true; releaseDescriptors($0) }
                }
            }
        }
        thread.stackSize = 256 * 1024
        thread.start()
        return stream
    }

    /// Queues a message; returns at once. Dropped silently once the connection is closed.
    public func send(_ message: Message) {
        sendRaw(FrameParser.frame(message.encoded()))
    }

    /// Queues raw bytes (tests use it to send malformed frames).
    public func sendRaw(_ bytes: Data) {
        writeQueue.async { [self] in
            guard !state.withLock({ $0.fdReleased || $0.outputClosed }) else { return }
            if writeAll(bytes) { close() }
        }
    }

    /// Returns once every write queued before the call has been attempted.
    public func flush() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            writeQueue.async { done.resume() }
        }
    }

    /// Ends the connection once the writes already queued have gone out (an
    /// error answer must reach the peer before the hang-up): the reader sees
    /// end of stream and the peer sees EOF.
    public func close() {
        state.withLock { $0.closed = true }
        writeQueue.async { [self] in
            state.withLock {
                guard !$0.fdReleased else { return }
                if isSocket {
                    _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
                } else if output != fd, $0.readerStarted {
                    // The peer sees EOF on our output; the reader stops at its own EOF (or with the process).
                    _ = Glibc.close(output)
                    $0.outputClosed = true
                }
                if !$0.readerStarted { $0.fdReleased = true; releaseDescriptors($0) }
            }
        }
    }

    /// True when the write failed.
    private func writeAll(_ data: Data) -> Bool {
        data.withUnsafeBytes { raw -> Bool in
            var off = 0
            while off < raw.count {
                let n = isSocket ? Glibc.send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                                 : Glibc.write(output, raw.baseAddress! + off, raw.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return true }
                off += n
            }
            return false
        }
    }
}

public enum SocketError: Error, Sendable, CustomStringConvertible {
    case pathTooLong(String)
    case system(String, Int32)
    case addressInUse(String)
    case notASocket(String)

    public var description: String {
        switch self {
        case .pathTooLong(let p): return "socket path \(p) is longer than 107 bytes; choose a shorter --socket path"
        case .system(let what, let e): return "\(what): \(String(cString: strerror(e)))"
        case .addressInUse(let p): return "a daemon is already running on \(p); use it, or stop it with `qcode stop`"
        case .notASocket(let p): return "\(p) exists and is not a socket; choose another --socket path (qcode will not delete it)"
        }
    }
}

/// Unix-domain stream sockets.
public enum UnixSocket {
    static func address(_ path: String) throws -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw SocketError.pathTooLong(path) }
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            for (i, b) in bytes.enumerated() { buf[i] = b }
            buf[bytes.count] = 0
        }
        return addr
    }

    public static func connect(_ path: String) throws -> Int32 {
        var addr = try address(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError.system("socket", errno) }
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else {
            let e = errno
            Glibc.close(fd)
            throw SocketError.system("cannot connect to \(path)", e)
        }
        return fd
    }

    /// Binds and listens. A socket file nobody answers on is stale (a daemon
    /// that crashed) and is replaced; a live one means a daemon is running.
    public static func listen(_ path: String, backlog: Int32 = 128) throws -> Int32 {
        var addr = try address(path)
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else { throw SocketError.notASocket(path) }
            if let fd = try? connect(path) {
                Glibc.close(fd)
                throw SocketError.addressInUse(path)
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError.system("socket", errno) }
        // Owner-only from the first instant: bind creates the file with ~umask.
        let old = umask(0o177)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        let bindErrno = errno
        umask(old)
        guard r == 0 else {
            Glibc.close(fd)
            if bindErrno == EADDRINUSE { throw SocketError.addressInUse(path) }
            throw SocketError.system("cannot bind \(path)", bindErrno)
        }
        chmod(path, 0o600)
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw SocketError.system("cannot listen on \(path)", e)
        }
        return fd
    }

    /// Blocks until a peer connects; nil once the listener is shut down.
    public static func accept(_ listener: Int32) -> Int32? {
        while true {
            let fd = Glibc.accept(listener, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                return fd
            }
            if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE {
                // Out of descriptors: back off (this is the accept loop's own thread, not the cooperative pool).
                if errno == EMFILE || errno == ENFILE { usleep(50_000) }
                continue
            }
            return nil
        }
    }

    /// The peer's uid (SO_PEERCRED), nil when the kernel will not say.
    public static func peerUID(_ fd: Int32) -> uid_t? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (hidden behind _GNU_SOURCE in Glibc).
        struct PeerCred { var pid: Int32 = 0; var uid: UInt32 = 0; var gid: UInt32 = 0 }
        var cred = PeerCred()
        var len = socklen_t(MemoryLayout<PeerCred>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 else { return nil }
        return cred.uid
    }

    /// Two connected sockets: the in-process client's end and the server's.
    public static func pair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SocketError.system("socketpair", errno)
        }
        return (fds[0], fds[1])
    }
}
