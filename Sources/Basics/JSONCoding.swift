import Foundation

/// The one JSON style qcode writes and reads: snake_case keys (what Python
/// and JavaScript clients, and jq users, expect), sorted for stable diffs.
public enum JSONCoding {
    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return e
    }

    public static var encoder: JSONEncoder { encoder() }

    public static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }

    /// `value` as one line (or pretty) of snake_case JSON text.
    public static func string<T: Encodable>(_ value: T, pretty: Bool = false) throws -> String {
        String(decoding: try encoder(pretty: pretty).encode(value), as: UTF8.self)
    }

    /// A Swift property name as it appears on the wire (`budgetTokens` → `budget_tokens`).
    public static func snakeCase(_ name: String) -> String {
        var out = ""
        for c in name {
            if c.isUppercase {
                if !out.isEmpty { out += "_" }
                out += c.lowercased()
            } else {
                out.append(c)
            }
        }
        return out
    }
}

/// Decodable types that refuse keys they do not know, so a misspelt field is
/// an error that names it instead of a setting silently left at its default.
public enum StrictDecoding {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Throws `DecodingError.dataCorrupted` naming the first key of the
    /// object being decoded that is not in `known` (compared after the
    /// decoder's key conversion, reported in snake_case).
    public static func rejectUnknownKeys<Key: CodingKey & CaseIterable>(_ decoder: any Decoder, _: Key.Type) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        let known = Set(Key.allCases.map(\.stringValue))
        for key in container.allKeys where !known.contains(key.stringValue) {
            let names = Key.allCases.map { JSONCoding.snakeCase($0.stringValue) }.joined(separator: ", ")
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath + [key],
                debugDescription: "unknown field '\(JSONCoding.snakeCase(key.stringValue))'; known fields: \(names)"))
        }
    }
}

/// Runs a short helper program to completion on a thread of its own (never
/// on Swift's cooperative pool, which blocking reads would stall), returning
/// its exit status and its stdout and stderr together.
public func runToCompletion(_ executable: URL, _ arguments: [String]) async throws -> (status: Int32, output: String) {
    try await withCheckedThrowingContinuation { cont in
        Thread.detachNewThread {
            let p = Process()
            p.executableURL = executable
            p.arguments = arguments
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = pipe
            p.standardInput = FileHandle.nullDevice
            do { try p.run() } catch { return cont.resume(throwing: error) }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            cont.resume(returning: (p.terminationStatus, String(decoding: data, as: UTF8.self)))
        }
    }
}
