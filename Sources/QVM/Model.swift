import Basics
import CodeDomain
import Foundation
import QStar

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The learned Q̂(s, a): a sigmoid over a linear function of hashed sparse
/// features. Linear so that one candidate costs one pass over ~100 active
/// features (microseconds), and training on a few thousand pairs takes seconds.
public struct QValueModel: Sendable {
    public static let formatName = "qcode-qvm"
    public static let formatVersion = 1

    public var extractor: FeatureExtractor
    public var bias: Float
    public var weights: [Float]
    /// How the model was made (method, γ, data, sizes): written to the file for provenance.
    public var metadata: [String: String]

    public init(hashBits: Int = 14, metadata: [String: String] = [:]) {
        extractor = FeatureExtractor(hashBits: hashBits)
        bias = 0
        weights = [Float](repeating: 0, count: 1 << hashBits)
        self.metadata = metadata
    }

    /// An untrained model that scores exactly as the `logprob` heuristic does
    /// (clamped to [0.02, 0.98]): where training data is thin the QVM stays close to it.
    public static func logprobPrior(hashBits: Int = 14) -> QValueModel {
        var m = QValueModel(hashBits: hashBits)
        m.weights[FeatureExtractor.priorSlot] = 1
        return m
    }

    @inline(__always)
    func logit(_ x: SparseFeatures) -> Float {
        var z = bias
        weights.withUnsafeBufferPointer { w in
            for k in 0..<x.indices.count { z += w[Int(x.indices[k])] * x.values[k] }
        }
        return z
    }

    public func predict(_ x: SparseFeatures) -> Double {
        1 / (1 + exp(-Double(logit(x))))
    }

    public func q(_ ctx: FeatureContext, parent: ParentView, candidate: CandidateView) -> Double {
        predict(extractor.features(ctx, parent: parent, candidate: candidate))
    }

    /// Plugs the model into the search as h = Q̂(parent, action).
    public var codeValueModel: CodeValueModel {
        let model = self
        return CodeValueModel(name: "qvm", fingerprint: fingerprint) { task in
            let ctx = FeatureContext(task: task)
            return ValueModel(name: "qvm") { state, path, proposals in
                let parent = ParentView(lines: state.lines, facts: state.facts, path: path)
                return proposals.map { p in
                    let isEnd = p.action.line == nil
                    let candidate = CandidateView(line: p.action.line, ends: p.action.ends,
                                                  logprob: isEnd ? nil : (p.logprobSum, p.tokens))
                    return model.q(ctx, parent: parent, candidate: candidate)
                }
            }
        }
    }
}

// MARK: - Model file

/// JSON with a format name, a version, the weights as little-endian Float32
/// in base64, and an FNV-1a checksum over everything that affects predictions.
struct ModelFile: Codable {
    var format: String
    var version: Int
    var featureVersion: Int
    var hashBits: Int
    var bias: Float
    var weights: String
    var checksum: String
    var metadata: [String: String]
}

extension QValueModel {
    static func checksum(bias: Float, weights: Data, hashBits: Int, featureVersion: Int) -> String {
        var x: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bytes: some Sequence<UInt8>) { for b in bytes { x = (x ^ UInt64(b)) &* 0x100_0000_01b3 } }
        mix("\(featureVersion)|\(hashBits)|\(bias.bitPattern)|".utf8)
        mix(weights)
        return String(x, radix: 16)
    }

    /// The checksum the model file carries: names these exact weights.
    public var fingerprint: String {
        Self.checksum(bias: bias, weights: weightData(), hashBits: extractor.hashBits, featureVersion: FeatureExtractor.version)
    }

    func weightData() -> Data {
        var d = Data(capacity: weights.count * 4)
        for w in weights { withUnsafeBytes(of: w.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
        return d
    }

    /// Writes to a temporary file beside `path` and renames it over, so a
    /// reader never sees half a model.
    public func save(to path: String) throws {
        let data = weightData()
        let file = ModelFile(format: Self.formatName, version: Self.formatVersion, featureVersion: FeatureExtractor.version,
                             hashBits: extractor.hashBits, bias: bias, weights: data.base64EncodedString(),
                             checksum: Self.checksum(bias: bias, weights: data, hashBits: extractor.hashBits,
                                                     featureVersion: FeatureExtractor.version),
                             metadata: metadata)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFile.write(try encoder.encode(file), to: URL(fileURLWithPath: path))
    }

    public static func load(from path: String) throws -> QValueModel {
        guard FileManager.default.fileExists(atPath: path) else { throw QVMError.modelMissing(path) }
        let raw: Data
        do { raw = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw QVMError.modelCorrupt(path, "unreadable: \((error as NSError).localizedDescription)")
        }
        return try decode(raw, path: path)
    }

    static func decode(_ raw: Data, path: String) throws -> QValueModel {
        // Read the header alone first, so a newer file says "version", not "corrupt".
        struct Header: Decodable { var format: String?; var version: Int? }
        guard let header = try? JSONDecoder().decode(Header.self, from: raw) else {
            throw QVMError.modelCorrupt(path, "not a JSON model file")
        }
        guard header.format == formatName else {
            throw QVMError.modelCorrupt(path, "format is '\(header.format ?? "none")', expected '\(formatName)'")
        }
        guard header.version == formatVersion else {
            throw QVMError.modelVersion(path, found: header.version ?? 0, expected: formatVersion)
        }
        guard let file = try? JSONDecoder().decode(ModelFile.self, from: raw) else {
            throw QVMError.modelCorrupt(path, "missing or malformed fields")
        }
        guard file.featureVersion == FeatureExtractor.version else {
            throw QVMError.modelVersion(path, found: file.featureVersion, expected: FeatureExtractor.version)
        }
        guard (8...22).contains(file.hashBits), let data = Data(base64Encoded: file.weights),
              data.count == 4 << file.hashBits else {
            throw QVMError.modelCorrupt(path, "weights do not match the declared size")
        }
        guard checksum(bias: file.bias, weights: data, hashBits: file.hashBits, featureVersion: file.featureVersion)
                == file.checksum else {
            throw QVMError.modelCorrupt(path, "checksum mismatch")
        }
        var model = QValueModel(hashBits: file.hashBits, metadata: file.metadata)
        model.bias = file.bias
        data.withUnsafeBytes { buf in
            for i in 0..<model.weights.count {
                model.weights[i] = Float(bitPattern: UInt32(littleEndian: buf.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        }
        return model
    }

    /// The model shipped with qcode (see Sources/QVM/README.md for how it was trained).
    public static func shipped() throws -> QValueModel {
        guard let url = Bundle.module.url(forResource: "default", withExtension: "qvm") else {
            throw QVMError.modelMissing("<bundle>/default.qvm")
        }
        return try load(from: url.path)
    }
}

// MARK: - Evaluation

/// Area under the ROC curve: the chance a random positive outranks a random
/// negative, ties counting half. Nil without both classes.
public func auc(scores: [Double], labels: [Bool]) -> Double? {
    let positives = labels.filter { $0 }.count
    let negatives = labels.count - positives
    guard positives > 0, negatives > 0 else { return nil }
    let order = scores.indices.sorted { scores[$0] < scores[$1] }
    var rankSum = 0.0
    var i = 0
    while i < order.count {
        var j = i
        while j + 1 < order.count, scores[order[j + 1]] == scores[order[i]] { j += 1 }
        let rank = Double(i + j) / 2 + 1
        for k in i...j where labels[order[k]] { rankSum += rank }
        i = j + 1
    }
    return (rankSum - Double(positives * (positives + 1)) / 2) / Double(positives * negatives)
}

/// Mean over tasks (with both outcomes) of the AUC within the task: how well
/// the scores rank one task's pairs, which is what the search compares; free
/// of how tasks differ in difficulty.
public func meanTaskAUC(scores: [Double], labels: [Bool], taskOf: [Int]) -> (auc: Double, tasks: Int)? {
    var byTask: [Int: [Int]] = [:]
    for i in labels.indices { byTask[taskOf[i], default: []].append(i) }
    let values = byTask.keys.sorted().compactMap { t -> Double? in
        let idx = byTask[t]!
        return auc(scores: idx.map { scores[$0] }, labels: idx.map { labels[$0] })
    }
    guard !values.isEmpty else { return nil }
    return (values.reduce(0, +) / Double(values.count), values.count)
}
