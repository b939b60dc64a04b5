import Foundation
import Testing
@testable import RPC

@Suite struct FrameParserTests {
    let body = Data(#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#.utf8)

    @Test func wholeFramesInOneChunk() throws {
        var p = FrameParser()
        var bytes = FrameParser.frame(body)
        bytes.append(FrameParser.frame(Data("{}".utf8)))
        let out = try p.push(bytes)
        #expect(out == [body, Data("{}".utf8)])
        #expect(p.buffered == 0)
    }

    @Test func bytesDrippedOneAtATime() throws {
        var p = FrameParser()
        var out: [Data] = []
        for b in FrameParser.frame(body) + FrameParser.frame(body) { out += try p.push([b]) }
        #expect(out == [body, body])
    }

    @Test func headerNamesAreCaseInsensitiveAndOtherHeadersIgnored() throws {
        var p = FrameParser()
        let raw = "content-type: application/vscode-jsonrpc; charset=utf-8\r\nCONTENT-LENGTH:  2\r\n\r\n{}"
        #expect(try p.push(Data(raw.utf8)) == [Data("{}".utf8)])
    }

    @Test func oversizedFrameIsRefusedBeforeItsBodyArrives() {
        var p = FrameParser(maxFrame: 100)
        #expect(throws: FrameError.tooLarge(length: 101, limit: 100)) { try p.push(Data("Content-Length: 101\r\n\r\n".utf8)) }
        // The stream has lost its place: everything after is refused too.
        #expect(throws: FrameError.self) { try p.push(FrameParser.frame(Data("{}".utf8))) }
    }

    @Test func missingOrBadContentLength() {
        var a = FrameParser()
        #expect(throws: FrameError.missingContentLength) { try a.push(Data("Content-Type: x\r\n\r\n{}".utf8)) }
        var b = FrameParser()
        #expect(throws: FrameError.self) { try b.push(Data("Content-Length: -3\r\n\r\n".utf8)) }
        var c = FrameParser()
        #expect(throws: FrameError.self) { try c.push(Data("garbage without colon\r\n\r\n".utf8)) }
        var d = FrameParser(maxHeader: 64)
        #expect(throws: FrameError.headerTooLong(limit: 64)) { try d.push(Data(String(repeating: "x", count: 65).utf8)) }
    }

    @Test func duplicateContentLengthsMustAgree() throws {
        var same = FrameParser()
        #expect(try same.push(Data("Content-Length: 2\r\ncontent-length: 2\r\n\r\n{}".utf8)) == [Data("{}".utf8)])
        // Which body is meant cannot be known: the stream has lost its place.
        var differ = FrameParser()
        #expect(throws: FrameError.conflictingContentLength) {
            try differ.push(Data("Content-Length: 2\r\nContent-Length: 12\r\n\r\n{}".utf8))
        }
    }

    @Test func emptyBodyIsAFrame() throws {
        var p = FrameParser()
        #expect(try p.push(Data("Content-Length: 0\r\n\r\n".utf8)) == [Data()])
    }
}

@Suite struct MessageTests {
    func decode(_ s: String) -> Result<Message, Message.DecodingFailure> { Message.decode(Data(s.utf8)) }

    @Test func requestsNotificationsAndResponses() throws {
        #expect(try decode(#"{"jsonrpc":"2.0","id":7,"method":"qcode/status"}"#).get() == .request(id: .int(7), method: "qcode/status", params: nil))
        #expect(try decode(#"{"jsonrpc":"2.0","id":"a","method":"m","params":{"x":1}}"#).get()
                == .request(id: .string("a"), method: "m", params: ["x": 1]))
        #expect(try decode(#"{"jsonrpc":"2.0","method":"exit"}"#).get() == .notification(method: "exit", params: nil))
        #expect(try decode(#"{"jsonrpc":"2.0","id":1,"result":null}"#).get() == .response(id: .int(1), result: .success(.null)))
        #expect(try decode(#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#).get()
                == .response(id: .int(1), result: .failure(ResponseError(code: -32601, message: "no"))))
    }

    @Test func errorsCarryTheRightCodeAndIdWhenReadable() {
        func failure(_ s: String) -> Message.DecodingFailure? {
            if case .failure(let f) = decode(s) { return f }
            return nil
        }
        #expect(failure("{not json")?.error.code == ErrorCode.parseError)
        #expect(failure("[1,2]")?.error.code == ErrorCode.invalidRequest)
        #expect(failure(#"{"id":3,"method":"m"}"#)?.error.code == ErrorCode.invalidRequest)
        #expect(failure(#"{"id":3,"method":"m"}"#)?.id == .int(3))
        #expect(failure(#"{"jsonrpc":"2.0","id":4,"method":5}"#)?.error.code == ErrorCode.invalidRequest)
        #expect(failure(#"{"jsonrpc":"2.0","id":{"a":1},"method":"m"}"#)?.error.code == ErrorCode.invalidRequest)
        #expect(failure(#"{"jsonrpc":"2.0","id":4,"method":"m","params":3}"#)?.error.code == ErrorCode.invalidRequest)
    }

    @Test func encodingRoundTrips() throws {
        let messages: [Message] = [
            .request(id: .int(1), method: "qcode/solve", params: ["task": ["text": "t", "tests": ["assert f()"]]]),
            .notification(method: "$/progress", params: ["token": 1, "value": ["best_f": 0.5]]),
            .response(id: .string("x"), result: .failure(.cancelled)),
            .response(id: nil, result: .failure(.parseError("bad"))),
        ]
        for m in messages {
            #expect(try Message.decode(m.encoded()).get() == m)
        }
    }
}

@Suite struct TransportTests {
    @Test func socketPairCarriesFramesBothWays() async throws {
        let (a, b) = try UnixSocket.pair()
        let client = RPCClient(connection: Connection(fd: a))
        let server = Connection(fd: b)
        Task {
            for try await body in server.bodies() {
                guard case .success(.request(let id, _, let params)) = Message.decode(body) else { continue }
                server.send(.response(id: id, result: .success(params ?? .null)))
            }
        }
        let echoed = try await client.request("echo", ["n": 42])
        #expect(echoed == ["n": 42])
        client.close()
    }
}
