import CodeDomain

/// A `--value` / `options.value` that names no value model qcode knows.
public struct UnknownValueModel: Error, CustomStringConvertible {
    public let name: String
    public var description: String { "the value model must be zero, logprob, qvm or qvm:MODEL_FILE, not '\(name)'" }
}

extension CodeValueModel {
    /// The value model a user names: `zero`, `logprob`, `qvm` (the shipped
    /// model) or `qvm:PATH`. One parser for the command line and the daemon.
    public static func named(_ name: String) throws -> CodeValueModel {
        switch name {
        case "zero": return .zero
        case "logprob": return .logprob
        case "qvm": return try QValueModel.shipped().codeValueModel
        case let v where v.hasPrefix("qvm:"): return try QValueModel.load(from: String(v.dropFirst(4))).codeValueModel
        default: throw UnknownValueModel(name: name)
        }
    }
}
