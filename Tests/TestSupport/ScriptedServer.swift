import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A loopback HTTP/1.1 server that answers each request from a script, so the
/// client's handling of protocol edge cases (and the fault matrix of
/// docs/faults.md) is tested against real sockets.
public final class ScriptedServer: Sendable {
    /// What the server does instead of a plain answer.
    public enum Fault: Sendable, Hashable {
        /// Read the request, never answer; hang up only when the client does.
        case hang
        /// Send the head at once, then the body one byte per `interval` seconds.
        case drip(interval: Double)
        /// Read the request, then reset the connection (RST, no answer).
        case reset
    }

    public struct Reply: Sendable {
        public var status = 200
        public var body: String
        /// Wait before answering (slow server).
        public var delay: Double = 0
        /// Close after sending only this many body bytes (truncated response).
        public var truncateAt: Int?
        public var fault: Fault?

        public init(status: Int = 200, body: String, delay: Double = 0, truncateAt: Int? = nil, fault: Fault? = nil) {
            self.status = status
            self.body = body
            self.delay = delay
            self.truncateAt = truncateAt
            self.fault = fault
        }

        public static func fault(_ fault: Fault, body: String = "{}") -> Reply { Reply(body: body, fault: fault) }
    }

    public let port: Int
    private let fd: Int32
    private let replies: Mutex<[Reply]>
    /// Answers every request once the script is used up (default: a 500 that says so).
    private let otherwise: Mutex<Reply>
    public let requests = Mutex<[String]>([])
    public let connectionsClosedEarly = Atomic<Int>(0)

    public init(_ replies: [Reply], otherwise: Reply = Reply(status: 500, body: "{\"error\":\"script exhausted\"}")) throws {
        self.replies = Mutex(replies)
        self.otherwise = Mutex(otherwise)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listen(fd, 16)
        self.fd = fd
        self.port = Int(UInt16(bigEndian: addr.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    public var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

    /// Requests received so far.
    public var requestCount: Int { requests.withLock { $0.count } }

    /// Replaces the script of a running server: `replies` next, then `otherwise` for ever.
    public func script(_ replies: [Reply], otherwise: Reply) {
        self.replies.withLock { $0 = replies }
        self.otherwise.withLock { $0 = otherwise }
    }

    public func close() { shutdown(fd, Int32(SHUT_RDWR)); Glibc.close(fd) }

    private func acceptLoop() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { return }
            Thread.detachNewThread { [self] in serve(client) }
        }
    }

    private func serve(_ client: Int32) {
        defer { Glibc.close(client) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        // Read headers, then Content-Length bytes of body.
        while true {
            if let range = data.range(of: Data("\r\n\r\n".utf8)) {
                let head = String(decoding: data[..<range.lowerBound], as: UTF8.self)
                let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if data.count - range.upperBound >= length {
                    if head.hasPrefix("GET /health") {
                        // The daemon's status asks; it is no completion and takes no reply from the script.
                        _ = send(client, Array("HTTP/1.1 200 OK\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"status\":\"ok\"}".utf8))
                        return
                    }
                    requests.withLock { $0.append(String(decoding: data, as: UTF8.self)) }
                    break
                }
            }
            let n = read(client, &buffer, buffer.count)
            if n <= 0 { return }
            data.append(contentsOf: buffer[0..<n])
        }
        let reply = replies.withLock { $0.isEmpty ? nil : $0.removeFirst() } ?? otherwise.withLock { $0 }
        if reply.fault == .hang, !waitForHangUp(client, seconds: .infinity) { return }
        if reply.fault == .reset {
            // SO_LINGER with a zero timeout: close sends RST instead of FIN.
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            return
        }
        if reply.delay > 0, !waitForHangUp(client, seconds: reply.delay) { return }
        let body = Array(reply.body.utf8)
        let head = "HTTP/1.1 \(reply.status) X\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        if case .drip(let interval)? = reply.fault {
            guard send(client, Array(head.utf8)) else { return }
            for byte in body {
                guard waitForHangUp(client, seconds: interval), send(client, [byte]) else { return }
            }
            return
        }
        _ = send(client, Array(head.utf8) + body.prefix(reply.truncateAt ?? body.count))
    }

    private func send(_ client: Int32, _ bytes: [UInt8]) -> Bool {
        var bytes = bytes
        return bytes.withUnsafeMutableBytes { Glibc.send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Waits `seconds` in slices; false (counted) when the client hung up first.
    private func waitForHangUp(_ client: Int32, seconds: Double) -> Bool {
        let end = Date().addingTimeInterval(min(seconds, 86_400))
        while Date() < end {
            var p = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 20) > 0 {
                var probe: UInt8 = 0
                if recv(client, &probe, 1, Int32(MSG_PEEK)) <= 0 {
                    connectionsClosedEarly.add(1, ordering: .relaxed)
                    return false
                }
            }
        }
        return true
    }
}
