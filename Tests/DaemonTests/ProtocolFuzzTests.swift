import Basics
import Foundation
import Logging
import RPC
import Testing
import TestSupport
@testable import Daemon

// A protocol fuzzer over the daemon's socket. A fixed seed generates frames of
// every kind a broken or hostile client could send — random bytes, bad and
// duplicate headers, huge or negative lengths, deep nesting, invalid UTF-8,
// wrong JSON-RPC shapes, and a wrong type for each parameter of each method —
// from several clients at once. The daemon must never crash, must answer
// every well-framed request (with the right id, and for a mistyped parameter
// with -32602 naming it), and must close only the connection that broke the
// framing; a bystander session is served throughout.
//
// `make test` runs FUZZ_FRAMES (default 3000) frames with FUZZ_SEED (default
// 1); `make fuzz` runs many more. Both print the seed: a failure reproduces
// with the same seed and count.

enum FuzzConfig {
    static var frames: Int { ProcessInfo.processInfo.environment["FUZZ_FRAMES"].flatMap(Int.init) ?? 3000 }
    static var seed: UInt64 { ProcessInfo.processInfo.environment["FUZZ_SEED"].flatMap(UInt64.init) ?? 1 }
    static let workers = 4
}

// MARK: - Generation

/// The seeded source of every choice the fuzzer makes.
struct Dice {
    var rng: SplitMix64
    init(seed: UInt64) { rng = SplitMix64(seed: seed) }
    mutating func below(_ n: Int) -> Int { Int(rng.next() % UInt64(max(1, n))) }
    mutating func chance(_ p: Double) -> Bool { Double(rng.next() >> 11) / Double(1 << 53) < p }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
}

/// A parameter's JSON shape, as the daemon decodes it.
indirect enum Shape: Sendable {
    /// Free text (now and then a random string), or one of a set the decoder itself checks.
    case string([String]), token([String]), int, unsigned, number, bool, any
    case array(Shape)
    case object([(name: String, shape: Shape, required: Bool)])

    /// JSON kinds a value of this shape may have (null only where the field is optional).
    var kinds: Set<Kind> {
        switch self {
        case .string, .token: return [.string]
        case .int, .unsigned: return [.int]
        case .number: return [.int, .double]
        case .bool: return [.bool]
        case .any: return Set(Kind.allCases)
        case .array: return [.array]
        case .object: return [.object]
        }
    }
}

enum Kind: CaseIterable, Sendable { case null, bool, int, double, string, array, object }

/// Every method's parameters (docs/protocol.md). `qcode/stop` is left out: any call of it stops the daemon.
let methodShapes: [(method: String, params: Shape?)] = {
    let text = Shape.string(["Write a function to add two numbers.", "", "x"])
    let task = Shape.object([("id", .string(["add", ""]), false), ("text", text, true),
                             ("tests", .array(.string(["assert add(1, 2) == 3", "assert True", "not python ("])), true),
                             ("setup", .string(["", "import math"]), false), ("entry_point", .string(["add", "f"]), false)])
    let options = Shape.object([
        ("method", .string(["greedy", "qstar", "best-of-n", "mcts"]), false), ("value", .token(["zero", "logprob", "qvm", "qvm:/nonexistent"]), false),
        ("k", .int, false), ("lambda", .number, false), ("agg", .token(["min", "max", "sum", "last"]), false),
        ("budget_tokens", .int, false), ("budget_expansions", .int, false), ("budget_seconds", .number, false),
        ("seed", .unsigned, false), ("samples", .int, false), ("temperature", .number, false), ("max_depth", .int, false),
        ("step_tokens", .int, false), ("max_line_tokens", .int, false), ("max_program_tokens", .int, false), ("timeout", .number, false),
    ])
    let program = Shape.string(["def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n", "x = (", ""])
    return [
        ("initialize", .object([("process_id", .int, false),
                                ("client_info", .object([("name", .string(["editor"]), true), ("version", .string(["1.0"]), false)]), false)])),
        ("shutdown", nil),
        ("qcode/status", nil),
        ("qcode/check", .object([("source", program, true), ("entry_point", .string(["add"]), false),
                                 ("tests", .string(["assert add(1, 2) == 3\n", "no call here"]), false)])),
        ("qcode/test", .object([("program", program, true), ("tests", .string(["assert add(1, 2) == 3\n", "assert (\n"]), true),
                                ("setup", .string(["", "import sys"]), false), ("timeout", .number, false)])),
        ("qcode/solve", .object([("task", task, false), ("task_file", .string(["/nonexistent/task.json", "relative.json", "/etc/hostname"]), false),
                                 ("options", options, false), ("trace", .bool, false), ("work_done_token", .any, false)])),
    ]
}()

/// What the daemon must do with a frame.
enum Expect {
    /// One response, with one of these ids; when `code` is set, that error, naming `mentions`.
    case answer(Set<RequestID?>, code: Int? = nil, mentions: String? = nil)
    /// Several requests in one write: a response for each, in any order.
    case answers(Set<RequestID>)
    /// A notification or a response: nothing comes back (checked with a probe request).
    case nothing
    /// Unreadable framing: -32700 with a null id, then the daemon hangs up.
    case closes
    /// `exit`: the daemon hangs up without a word.
    case exits
    /// The client hangs up in the middle of a frame.
    case hangUp
}

struct FuzzCase {
    var category: String
    var bytes: [UInt8]
    var expect: Expect
    /// For `initialize` and `shutdown`: the session's phase moves when they succeed.
    var method: String?
}

enum Phase { case fresh, initialized, shutDown }

struct Generator {
    var dice: Dice
    var serial = 0

    init(seed: UInt64) { dice = Dice(seed: seed) }

    static func frame(_ body: [UInt8], header: String? = nil) -> [UInt8] {
        Array((header ?? "Content-Length: \(body.count)\r\n\r\n").utf8) + body
    }

    static func json(_ v: JSONValue) -> [UInt8] {
        Array((try? JSONEncoder().encode(v)) ?? Data())
    }

    mutating func nextID() -> RequestID {
        serial += 1
        return dice.chance(0.7) ? .int(serial) : .string("r\(serial)-\(dice.below(1000))")
    }

    /// A value of the shape, valid in kind (not always in range).
    mutating func value(_ shape: Shape, depth: Int = 0) -> JSONValue {
        switch shape {
        case .string(let pool): return dice.chance(0.9) ? .string(dice.pick(pool)) : .string(String(repeating: "é", count: dice.below(50)))
        case .token(let pool): return .string(dice.pick(pool))
        case .int: return .int(dice.pick([0, 1, 2, 3, 4, 8, 64, 65, -1, 100, 1500, Int.max, Int.min]))
        case .unsigned: return .int(dice.pick([0, 1, 42, Int.max]))
        case .number: return dice.chance(0.5) ? .double(dice.pick([0.5, 1.5, 2.25, -0.5, 1e300, 3600.5, 1e-9])) : .int(dice.pick([0, 1, 2, 10, 3601]))
        case .bool: return .bool(dice.chance(0.5))
        case .any: return wrong(Set(), depth: depth)
        case .array(let element): return .array((0..<dice.below(4)).map { _ in value(element, depth: depth + 1) })
        case .object(let fields):
            var o: [String: JSONValue] = [:]
            for f in fields where f.required || dice.chance(0.5) { o[f.name] = value(f.shape, depth: depth + 1) }
            return .object(o)
        }
    }

    /// A value whose kind is not in `allowed`.
    mutating func wrong(_ allowed: Set<Kind>, depth: Int = 0) -> JSONValue {
        let kinds = Kind.allCases.filter { !allowed.contains($0) }
        switch dice.pick(kinds) {
        case .null: return .null
        case .bool: return .bool(dice.chance(0.5))
        case .int: return .int(dice.pick([0, -1, 7, Int.max]))
        case .double: return .double(dice.pick([0.5, -2.5, 1e300, -1e-300]))
        case .string: return .string(dice.pick(["", "x", "42", "true", "null", "{}", "\u{0}", "🦀"]))
        case .array: return depth > 3 ? .array([]) : .array([wrong([], depth: depth + 1)])
        case .object: return depth > 3 ? .object([:]) : .object(["a": wrong([], depth: depth + 1)])
        }
    }

    /// Paths to every field of a shape (object fields, nested), with the field's shape and whether it is required.
    static func fields(_ shape: Shape, prefix: [String] = []) -> [(path: [String], shape: Shape, required: Bool)] {
        guard case .object(let fs) = shape else { return [] }
        return fs.flatMap { f in [(prefix + [f.name], f.shape, f.required)] + fields(f.shape, prefix: prefix + [f.name]) }
    }

    static func set(_ v: JSONValue, at path: [String], in object: JSONValue) -> JSONValue {
        guard let key = path.first, case .object(var o) = object else { return object }
        if path.count == 1 { o[key] = v } else { o[key] = set(v, at: Array(path.dropFirst()), in: o[key] ?? .object([:])) }
        return .object(o)
    }

    static func request(_ id: RequestID?, _ method: String, _ params: JSONValue?) -> JSONValue {
        var o: [String: JSONValue] = ["jsonrpc": "2.0", "method": .string(method)]
        if let id { o["id"] = id.json }
        if let params { o["params"] = params }
        return .object(o)
    }

    mutating func next(_ phase: Phase) -> FuzzCase {
        switch dice.below(100) {
        case 0..<40: return typedRequest(phase)
        case 40..<46: return notification()
        case 46..<49: return responseObject()
        case 49..<58: return badShape()
        case 58..<64: return notJSON()
        case 64..<68: return deepNesting()
        case 68..<72: return duplicateKeys()
        case 72..<80: return goodFramingVariant(phase)
        case 80..<83: return twoInOneWrite()
        case 83..<93: return badFraming()
        case 93..<96: return FuzzCase(category: "hang up mid-frame", bytes: Array("Content-Length: 100\r\n\r\n{\"jsonrpc\"".utf8).prefix(dice.below(30) + 1).map { $0 }, expect: .hangUp)
        default: return FuzzCase(category: "exit", bytes: Self.frame(Self.json(Self.request(nil, "exit", nil))), expect: .exits)
        }
    }

    /// A request to a method with parameters of its shape, often with one of
    /// them replaced by a value of the wrong type, or an unknown one added.
    mutating func typedRequest(_ phase: Phase) -> FuzzCase {
        let id = nextID()
        // Mostly real methods; now and then one that does not exist.
        if dice.chance(0.05) {
            let m = dice.pick(["qcode/frobnicate", "", "qcode/stop ", "QCODE/STATUS", "exit", "$/progress", "initialized"])
            return FuzzCase(category: "unknown method", bytes: Self.frame(Self.json(Self.request(id, m, nil))), expect: .answer([id]))
        }
        // A value of the right type that no option takes: refused by the option's name.
        if phase == .initialized, dice.chance(0.05) {
            let (field, bad) = dice.pick([("agg", "avg"), ("value", "bogus"), ("value", "qvm:"), ("method", "mcts"), ("k", "4")])
            let params: JSONValue = .object(["task": ["text": "add", "tests": ["assert add(1, 2) == 3"]],
                                             "options": .object([field: field == "k" ? .int(0) : .string(bad)])])
            return FuzzCase(category: "qcode/solve with an option out of range",
                            bytes: Self.frame(Self.json(Self.request(id, "qcode/solve", params))),
                            expect: .answer([id], code: ErrorCode.invalidParams, mentions: field == "k" ? "options.k" : field))
        }
        // A fresh session is initialized soon, so most requests reach their handlers.
        let (method, shape) = phase == .fresh && dice.chance(0.5) ? methodShapes[0] : dice.pick(methodShapes)
        guard let shape else {
            // Any params at all: ignored, or (not an object or array) refused; answered either way.
            let params: JSONValue? = dice.chance(0.5) ? nil : value(.any)
            return FuzzCase(category: "\(method)", bytes: Self.frame(Self.json(Self.request(id, method, params))),
                            expect: .answer([id]), method: method)
        }
        var params = value(shape)
        var expect = Expect.answer([id])
        var category = method
        // The daemon checks the phase before the params (as LSP says): only then is a bad param named.
        let judged = method == "initialize" ? phase == .fresh : phase == .initialized
        if dice.chance(0.7) {
            // Every field that has a wrong type (`work_done_token` takes any JSON).
            let fields = Self.fields(shape).filter { if case .any = $0.shape { return false }; return true }
            let field = dice.pick(fields)
            var allowed = field.shape.kinds
            if !field.required { allowed.insert(.null) }
            let bad = wrong(allowed)
            params = Self.set(bad, at: field.path, in: params)
            // A parent the mutation had to create is itself valid only if all its required fields are there.
            let path = field.path.joined(separator: ".")
            category = "\(method) with \(path) mistyped"
            if judged && Self.parentsComplete(field.path, in: params, shape: shape) {
                expect = .answer([id], code: ErrorCode.invalidParams, mentions: "'\(path)'")
            }
        } else if dice.chance(0.2), method != "initialize" {
            let fields = Self.fields(shape).filter { if case .object = $0.shape { return true }; return false }
            let parent = fields.isEmpty || dice.chance(0.5) ? [] : dice.pick(fields).path
            let path = (parent + ["frobnicate"]).joined(separator: ".")
            params = Self.set(.int(1), at: parent + ["frobnicate"], in: params)
            category = "\(method) with unknown \(path)"
            if judged && Self.parentsComplete(parent + ["frobnicate"], in: params, shape: shape) {
                expect = .answer([id], code: ErrorCode.invalidParams, mentions: "unknown field 'frobnicate'")
            }
        }
        return FuzzCase(category: category, bytes: Self.frame(Self.json(Self.request(id, method, params))), expect: expect, method: method)
    }

    /// True when each object on the way to `path` has every required field:
    /// otherwise the daemon may stop at a missing one first (and say so).
    static func parentsComplete(_ path: [String], in params: JSONValue, shape: Shape) -> Bool {
        var value = params, shape = shape
        for key in path.dropLast() {
            guard case .object(let fs) = shape, case .object(let o) = value else { return false }
            for f in fs where f.required && o[f.name] == nil { return false }
            guard let next = fs.first(where: { $0.name == key }), let v = o[key] else { return false }
            value = v
            shape = next.shape
        }
        guard case .object(let fs) = shape, case .object(let o) = value else { return false }
        // Siblings decoded before the mutated field could fail first: all must be valid in kind (they are: generated so).
        return fs.allSatisfy { !$0.required || o[$0.name] != nil }
    }

    mutating func notification() -> FuzzCase {
        let method = dice.pick(["$/cancelRequest", "initialized", "$/setTrace", "qcode/unknown", "$/cancelRequest"])
        let params: JSONValue? = method == "$/cancelRequest" && dice.chance(0.6)
            ? .object(["id": dice.chance(0.5) ? .int(dice.below(100)) : wrong([])]) : (dice.chance(0.5) ? nil : .object(["x": wrong([])]))
        return FuzzCase(category: "notification \(method)", bytes: Self.frame(Self.json(Self.request(nil, method, params))), expect: .nothing)
    }

    mutating func responseObject() -> FuzzCase {
        let body: JSONValue = dice.chance(0.5)
            ? .object(["jsonrpc": "2.0", "id": .int(dice.below(50)), "result": wrong([])])
            : .object(["jsonrpc": "2.0", "id": .int(dice.below(50)), "error": .object(["code": -1, "message": "client error"])])
        return FuzzCase(category: "response from the client", bytes: Self.frame(Self.json(body)), expect: .nothing)
    }

    /// JSON that is no JSON-RPC request: each is refused with -32600, with the id when it could be read.
    mutating func badShape() -> FuzzCase {
        let id = nextID()
        let cases: [(String, JSONValue, RequestID?)] = [
            ("batch", .array([Self.request(id, "qcode/status", nil)]), nil),
            ("scalar", wrong([.object, .array]), nil),
            ("no jsonrpc", .object(["id": id.json, "method": "qcode/status"]), id),
            ("jsonrpc 1.0", .object(["jsonrpc": "1.0", "id": id.json, "method": "qcode/status"]), id),
            ("id of a wrong type", .object(["jsonrpc": "2.0", "id": wrong([.int, .string, .null]), "method": "qcode/status"]), nil),
            ("method of a wrong type", .object(["jsonrpc": "2.0", "id": id.json, "method": wrong([.string])]), id),
            ("params of a wrong type", .object(["jsonrpc": "2.0", "id": id.json, "method": "qcode/check",
                                                "params": dice.pick([.int(1), .string("x"), .bool(true), .double(0.5)])]), id),
            ("null id", .object(["jsonrpc": "2.0", "id": .null, "method": "qcode/status"]), nil),
            ("no method, result or error", .object(["jsonrpc": "2.0", "id": id.json]), id),
        ]
        let (name, body, answerID) = dice.pick(cases)
        return FuzzCase(category: name, bytes: Self.frame(Self.json(body)), expect: .answer([answerID], code: ErrorCode.invalidRequest))
    }

    mutating func notJSON() -> FuzzCase {
        let lead: [UInt8] = [0xFF, 0xC0, 0x80, UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: ",")]
        let body: [UInt8]
        let name: String
        switch dice.below(4) {
        case 0:
            name = "random bytes body"
            body = [dice.pick(lead)] + dice.bytes(dice.below(200))
        case 1:
            name = "invalid UTF-8 in a string"
            body = Array(#"{"jsonrpc":"2.0","id":1,"method":"qcode/check","params":{"source":""#.utf8) + [0xC3, 0x28, 0xFF, 0xFE] + Array(#""}}"#.utf8)
        case 2:
            name = "truncated JSON"
            let full = Self.json(Self.request(.int(1), "qcode/status", nil))
            body = Array(full.prefix(max(1, dice.below(full.count - 1))))
        default:
            name = "empty body"
            body = []
        }
        return FuzzCase(category: name, bytes: Self.frame(body), expect: .answer([nil], code: ErrorCode.parseError))
    }

    mutating func deepNesting() -> FuzzCase {
        let id = nextID()
        let depth = dice.pick([100, 511, 512, 513, 2000, 100_000])
        let open = dice.chance(0.5) ? "[" : "{\"a\":"
        let close = open == "[" ? "]" : "}"
        let nested = String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
        let head = #"{"jsonrpc":"2.0","id":\#(String(data: Data(Self.json(id.json)), encoding: .utf8)!),"method":"qcode/check","params":{"source":"#
        // Within the parser's depth the request is read and `source` is mistyped; past it the body is unreadable.
        return FuzzCase(category: "nesting \(depth) deep", bytes: Self.frame(Array((head + nested + "}}").utf8)), expect: .answer([id, nil]))
    }

    mutating func duplicateKeys() -> FuzzCase {
        let a = nextID(), b = nextID()
        let body = #"{"jsonrpc":"2.0","id":\#(String(decoding: Self.json(a.json), as: UTF8.self)),"method":"qcode/status","id":\#(String(decoding: Self.json(b.json), as: UTF8.self))}"#
        return FuzzCase(category: "duplicate keys", bytes: Self.frame(Array(body.utf8)), expect: .answer([a, b, nil]))
    }

    /// Framing a parser must accept: other headers, names in any case, equal duplicates, spaces.
    mutating func goodFramingVariant(_ phase: Phase) -> FuzzCase {
        let id = nextID()
        let body = Self.json(Self.request(id, "qcode/status", nil))
        let header = dice.pick([
            "content-length: \(body.count)\r\n\r\n",
            "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: \(body.count)\r\n\r\n",
            "Content-Length: \(body.count)\r\nContent-Length: \(body.count)\r\n\r\n",
            "CONTENT-LENGTH:    \(body.count)   \r\nX-Whatever: \u{1F980}\r\n\r\n",
        ])
        return FuzzCase(category: "header variant", bytes: Self.frame(body, header: header), expect: .answer([id]))
    }

    mutating func twoInOneWrite() -> FuzzCase {
        let a = nextID(), b = nextID()
        let bytes = Self.frame(Self.json(Self.request(a, "qcode/status", nil)))
            + Self.frame(Self.json(Self.request(b, "qcode/check", .object(["source": "x = 1\n"]))))
        return FuzzCase(category: "two frames in one write", bytes: bytes, expect: .answers([a, b]))
    }

    /// Framing the parser cannot recover from: the daemon answers -32700 and closes that connection.
    mutating func badFraming() -> FuzzCase {
        let body = Self.json(Self.request(.int(1), "qcode/status", nil))
        switch dice.below(9) {
        case 0:
            // Random header bytes (never a Content-Length by chance), then the blank line.
            var junk: [UInt8]
            repeat {
                junk = dice.bytes(dice.below(300)).map { $0 == 13 || $0 == 10 ? 32 : $0 }
            } while String(decoding: junk, as: UTF8.self).lowercased().contains("content-length")
            return FuzzCase(category: "random header bytes", bytes: junk + Array("\r\n\r\n".utf8) + body, expect: .closes)
        case 1: return FuzzCase(category: "negative length", bytes: Self.frame(body, header: "Content-Length: -\(dice.below(1000) + 1)\r\n\r\n"), expect: .closes)
        case 2: return FuzzCase(category: "length past Int", bytes: Self.frame(body, header: "Content-Length: 99999999999999999999999\r\n\r\n"), expect: .closes)
        case 3: return FuzzCase(category: "length over the frame limit", bytes: Array("Content-Length: \(FrameParser.defaultMaxFrame + 1 + dice.below(1 << 30))\r\n\r\n".utf8), expect: .closes)
        case 4: return FuzzCase(category: "length not a number", bytes: Self.frame(body, header: "Content-Length: \(dice.pick(["abc", "0x10", "1e3", "", "١٢"]))\r\n\r\n"), expect: .closes)
        case 5: return FuzzCase(category: "conflicting lengths", bytes: Self.frame(body, header: "Content-Length: \(body.count)\r\nContent-Length: \(body.count + 1 + dice.below(9))\r\n\r\n"), expect: .closes)
        case 6: return FuzzCase(category: "no Content-Length", bytes: Self.frame(body, header: "Content-Type: application/json\r\n\r\n"), expect: .closes)
        case 7: return FuzzCase(category: "header without a colon", bytes: Self.frame(body, header: "Content-Length \(body.count)\r\n\r\n"), expect: .closes)
        default:
            let long = "X-Long: " + String(repeating: "a", count: 4097 + dice.below(4000))
            return FuzzCase(category: "header over 4 KiB", bytes: Array(long.utf8), expect: .closes)
        }
    }
}

// MARK: - Driving

/// One fuzzing client: its own connection (renewed whenever it ends), its view of the session's phase.
struct FuzzClient {
    let path: String
    var peer: RawPeer
    var phase = Phase.fresh
    var reconnects = 0

    init(path: String) throws {
        self.path = path
        peer = RawPeer(try UnixSocket.connect(path))
    }

    mutating func reconnect() throws {
        peer.connection.close()
        peer = RawPeer(try UnixSocket.connect(path))
        phase = .fresh
        reconnects += 1
    }

    /// The next response, skipping `$/progress` notifications.
    func response(_ what: String) async throws -> (RequestID?, Result<JSONValue, ResponseError>) {
        while true {
            guard let m = try await peer.next(timeout: 60) else { throw FuzzFailure("\(what): the daemon hung up instead of answering") }
            if case .response(let id, let result) = m { return (id, result) }
        }
    }

    func send(_ bytes: [UInt8], dice: inout Dice) async {
        // Now whole, now in pieces the daemon must put back together.
        if bytes.count > 1, dice.chance(0.3) {
            var rest = bytes[...]
            while !rest.isEmpty {
                let n = 1 + dice.below(min(rest.count, 64))
                peer.connection.sendRaw(Data(rest.prefix(n)))
                rest = rest.dropFirst(n)
                if dice.chance(0.3) { await peer.connection.flush() }
            }
        } else {
            peer.connection.sendRaw(Data(bytes))
        }
    }
}

struct FuzzFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Counts by category, for the printed summary.
actor FuzzTally {
    var byCategory: [String: Int] = [:]
    var answered = 0
    var closedByDaemon = 0
    /// Errors checked to name the parameter at fault.
    var named = 0
    func name() { named += 1 }
    func add(_ c: String) { byCategory[c.components(separatedBy: " with ").first.map { c.contains(" with ") ? $0 + " (bad param)" : $0 } ?? c, default: 0] += 1 }
    func answer(_ n: Int = 1) { answered += n }
    func closed() { closedByDaemon += 1 }
}

let knownCodes: Set<Int> = [ErrorCode.parseError, ErrorCode.invalidRequest, ErrorCode.methodNotFound, ErrorCode.invalidParams,
                            ErrorCode.internalError, ErrorCode.serverNotInitialized, ErrorCode.serverBusy]

func fuzz(worker: Int, frames: Int, seed: UInt64, path: String, tally: FuzzTally) async throws {
    var gen = Generator(seed: SplitMix64.mix(seed, UInt64(worker)))
    var client = try FuzzClient(path: path)
    defer { client.peer.connection.close() }
    for n in 0..<frames {
        let c = gen.next(client.phase)
        await tally.add(c.category)
        let what = "worker \(worker), frame \(n) (\(c.category))"
        await client.send(c.bytes, dice: &gen.dice)
        switch c.expect {
        case .answer(let ids, let code, let mentions):
            let (id, result) = try await client.response(what)
            await tally.answer()
            guard ids.contains(id) else { throw FuzzFailure("\(what): answered id \(String(describing: id)), expected one of \(ids)") }
            if case .failure(let e) = result {
                guard knownCodes.contains(e.code), !e.message.isEmpty else { throw FuzzFailure("\(what): odd error \(e)") }
            }
            if let code {
                guard case .failure(let e) = result, e.code == code else { throw FuzzFailure("\(what): expected error \(code), got \(result)") }
                if let mentions {
                    guard e.message.contains(mentions) else { throw FuzzFailure("\(what): the error does not name \(mentions): \(e.message)") }
                    await tally.name()
                }
            }
            if case .success = result {
                if c.method == "initialize" { client.phase = .initialized }
                if c.method == "shutdown" { client.phase = .shutDown }
            }
        case .answers(let ids):
            var seen = Set<RequestID>()
            for _ in ids {
                let (id, _) = try await client.response(what)
                if let id { seen.insert(id) }
            }
            await tally.answer(ids.count)
            guard seen == ids else { throw FuzzFailure("\(what): answered \(seen), expected \(ids)") }
        case .nothing:
            // Whatever came back for the frame would come before the probe's answer.
            let probe = RequestID.string("probe-\(worker)-\(n)")
            client.peer.connection.send(.request(id: probe, method: "qcode/status", params: nil))
            let (id, _) = try await client.response(what + " probe")
            guard id == probe else { throw FuzzFailure("\(what): got an answer (id \(String(describing: id))) to a message that needs none") }
        case .closes:
            let (id, result) = try await client.response(what)
            guard id == nil, case .failure(let e) = result, e.code == ErrorCode.parseError else {
                throw FuzzFailure("\(what): expected -32700 with a null id, got \(String(describing: id)) \(result)")
            }
            guard try await client.peer.next(timeout: 60) == nil else { throw FuzzFailure("\(what): the daemon kept the connection open") }
            await tally.closed()
            try client.reconnect()
        case .exits:
            guard try await client.peer.next(timeout: 60) == nil else { throw FuzzFailure("\(what): exit did not end the session") }
            try client.reconnect()
        case .hangUp:
            try client.reconnect()
        }
    }
}

@Suite struct ProtocolFuzzTests {
    @Test func generatedFramesNeverCrashTheDaemonAndCloseOnlyTheirOwnConnection() async throws {
        let frames = FuzzConfig.frames, seed = FuzzConfig.seed
        print("protocol fuzz: \(frames) frames, seed \(seed), \(FuzzConfig.workers) clients (FUZZ_FRAMES=\(frames) FUZZ_SEED=\(seed) reproduces)")
        var settings = DaemonSettings()
        settings.maxQueuedSolves = 64
        settings.progressInterval = 0
        var logger = Logger(label: "qcode.daemon.fuzz")
        logger.logLevel = .error  // each closed connection would log a warning
        let server = DaemonServer(components: Components(model: InstantModel(), verifier: { _ in ScriptedVerifier() }),
                                  settings: settings, logger: logger)
        let path = tempSocketPath()
        try server.listen(socketPath: path)
        let bystander = try RPCClient(socketPath: path)
        try await bystander.initialize()

        let tally = FuzzTally()
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<FuzzConfig.workers {
                let share = frames / FuzzConfig.workers + (w < frames % FuzzConfig.workers ? 1 : 0)
                group.addTask { try await fuzz(worker: w, frames: share, seed: seed, path: path, tally: tally) }
            }
            // The bystander's session is served all along.
            group.addTask {
                for _ in 0..<20 {
                    #expect(try await within(60, "the bystander's status") { try await bystander.request("qcode/status") }["version"]
                            == .string(qcodeVersion))
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            try await group.waitForAll()
        }
        let seconds = (ContinuousClock.now - started).seconds

        // The daemon still serves, and every fuzzing session is gone: only the bystander's remains.
        try await eventually("the fuzzers' sessions to close") {
            try await bystander.request("qcode/status")["connections"] == 1
        }
        let byCategory = await tally.byCategory
        print(String(format: "protocol fuzz: %d frames in %.1f s (%.0f/s); %d answers, %d of them errors checked to name the bad "
                     + "parameter; %d connections closed by the daemon for bad framing, none other", frames, seconds,
                     Double(frames) / max(seconds, 0.001), await tally.answered, await tally.named, await tally.closedByDaemon))
        print("protocol fuzz: " + byCategory.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        bystander.close()
        await server.stop()
    }
}

@Suite struct ParameterMessageTests {
    /// Foundation calls a number that does not fit an integer field "not valid JSON", without a path; the daemon names it.
    @Test func aNumberThatDoesNotFitNamesItsParameter() async throws {
        let server = makeServer()
        let client = try server.connectInProcess()
        defer { client.close() }
        try await client.initialize()
        let task = try JSONValue.encoding(addSpec)
        for (options, message) in [(["k": 2.5], "parameter 'options.k' must be a whole number that fits, not 2.5"),
                                   (["seed": -1], "parameter 'options.seed' must be a whole number that fits, not -1"),
                                   (["max_depth": 1e300], "parameter 'options.max_depth' must be a whole number that fits, not 1e+300")]
                as [([String: JSONValue], String)] {
            let e = await responseError { try await client.request("qcode/solve", ["task": task, "options": .object(options)]) }
            #expect(e?.code == ErrorCode.invalidParams)
            #expect(e?.message == "qcode/solve: " + message, "\(String(describing: e))")
        }
        let initialize = try server.connectInProcess()
        defer { initialize.close() }
        let e = await responseError { try await initialize.request("initialize", ["client_info": ["name": 7]]) }
        #expect(e?.message.hasPrefix("initialize: parameter 'client_info.name' has the wrong type") == true, "\(String(describing: e))")
    }
}
