import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A loopback HTTP/1.1 server that answers each request from a script, so the
/// client's handling of protocol edge cases is tested against real sockets.
public final class ScriptedServer: Sendable {
    public struct Reply: Sendable {
        public var status = 200
        public var body: String
        /// Wait before answering (slow server).
        public var delay: Double = 0
        /// Close after sending only this many body bytes (truncated response).
        public var truncateAt: Int?

        public init(status: Int = 200, body: String, delay: Double = 0, truncateAt: Int? = nil) {
            self.status = status
            self.body = body
            self.delay = delay
            self.truncateAt = truncateAt
        }
    }

    public let port: Int
    private let fd: Int32
    private let replies: Mutex<[Reply]>
    public let requests = Mutex<[String]>([])
    public let connectionsClosedEarly = Atomic<Int>(0)

    public init(_ replies: [Reply]) throws {
        self.replies = Mutex(replies)
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
                    requests.withLock { $0.append(String(decoding: data, as: UTF8.self)) }
                    break
                }
            }
            let n = read(client, &buffer, buffer.count)
            if n <= 0 { return }
            data.append(contentsOf: buffer[0..<n])
        }
        let reply = replies.withLock { $0.isEmpty ? Reply(status: 500, body: "{\"error\":\"script exhausted\"}") : $0.removeFirst() }
        if reply.delay > 0 {
            // Sleep in slices, noticing a client that gave up.
            let end = Date().addingTimeInterval(reply.delay)
            while Date() < end {
                var p = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 20) > 0 {
                    var probe: UInt8 = 0
                    if recv(client, &probe, 1, Int32(MSG_PEEK)) == 0 {
                        connectionsClosedEarly.add(1, ordering: .relaxed)
                        return
                    }
                }
            }
        }
        let body = Array(reply.body.utf8)
        let head = "HTTP/1.1 \(reply.status) X\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var out = Array(head.utf8) + body.prefix(reply.truncateAt ?? body.count)
        _ = out.withUnsafeMutableBytes { write(client, $0.baseAddress, $0.count) }
    }
}
