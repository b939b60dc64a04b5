import Foundation

/// Why a byte stream cannot be read as LSP frames. After one of these the
/// stream has lost its place, so the connection must close.
public enum FrameError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooLarge(length: Int, limit: Int)
    case headerTooLong(limit: Int)
    case missingContentLength
    /// Two `Content-Length` headers that disagree: which body is meant cannot be known.
    case conflictingContentLength
    case badHeader(String)

    public var description: String {
        switch self {
        case .tooLarge(let n, let limit):
            return "frame of \(n) bytes exceeds the limit of \(limit) bytes; send smaller messages"
        case .headerTooLong(let limit):
            return "frame header longer than \(limit) bytes without a blank line; each header must end with \\r\\n\\r\\n"
        case .missingContentLength:
            return "frame header without Content-Length; every message needs 'Content-Length: N\\r\\n\\r\\n'"
        case .conflictingContentLength:
            return "frame with two different Content-Length headers; send exactly one"
        case .badHeader(let line):
            return "unreadable frame header line '\(line)'; expected 'Name: value'"
        }
    }
}

/// LSP base framing: `Content-Length: N\r\n` (other headers ignored) then a
/// blank line then N bytes of body. Pure and incremental: bytes may arrive in
/// any chunking, down to one at a time.
public struct FrameParser: Sendable {
    public static let defaultMaxFrame = 8 << 20
    public let maxFrame: Int
    public let maxHeader: Int
    private var buffer: [UInt8] = []
    private var pendingLength: Int?
    private var failed: FrameError?

    public init(maxFrame: Int = FrameParser.defaultMaxFrame, maxHeader: Int = 4096) {
        self.maxFrame = maxFrame
        self.maxHeader = maxHeader
    }

    /// Bytes received but not yet part of a complete frame.
    public var buffered: Int { buffer.count }

    /// Feeds a chunk; returns every body it completes.
    public mutating func push<C: Collection>(_ bytes: C) throws(FrameError) -> [Data] where C.Element == UInt8 {
        if let failed { throw failed }
        buffer.append(contentsOf: bytes)
        var bodies: [Data] = []
        var start = 0
        defer {
            if failed != nil { buffer = [] } else if start > 0 { buffer.removeFirst(start) }
        }
        while true {
            if let length = pendingLength {
                guard buffer.count - start >= length else { break }
                bodies.append(Data(buffer[start..<start + length]))
                start += length
                pendingLength = nil
                continue
            }
            guard let end = Self.headerEnd(buffer, from: start) else {
                if buffer.count - start > maxHeader { return try fail(.headerTooLong(limit: maxHeader)) }
                break
            }
            let header = String(decoding: buffer[start..<end], as: UTF8.self)
            start = end + 4
            var length: Int?
            for line in header.components(separatedBy: "\r\n") where !line.isEmpty {
                guard let colon = line.firstIndex(of: ":") else { return try fail(.badHeader(String(line.prefix(80)))) }
                let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if name == "content-length" {
                    guard let n = Int(value), n >= 0 else { return try fail(.badHeader(String(line.prefix(80)))) }
                    if let length, length != n { return try fail(.conflictingContentLength) }
                    length = n
                }
            }
            guard let length else { return try fail(.missingContentLength) }
            guard length <= maxFrame else { return try fail(.tooLarge(length: length, limit: maxFrame)) }
            pendingLength = length
        }
        return bodies
    }

    private mutating func fail(_ e: FrameError) throws(FrameError) -> [Data] {
        failed = e
        throw e
    }

    private static func headerEnd(_ b: [UInt8], from start: Int) -> Int? {
        var i = start
        while i + 3 < b.count {
            if b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
            i += 1
        }
        return nil
    }

    public static func frame(_ body: Data) -> Data {
        var d = Data("Content-Length: \(body.count)\r\n\r\n".utf8)
        d.append(body)
        return d
    }
}
