/// Model files and training data that cannot be used, with the command that fixes it.
public enum QVMError: Error, Sendable, CustomStringConvertible, Equatable {
    case modelMissing(String)
    case modelCorrupt(String, String)
    case modelVersion(String, found: Int, expected: Int)
    case noTrainingData(String)

    public var description: String {
        switch self {
        case .modelMissing(let path):
            return "QVM model file \(path) not found: train one with `qcode train-qvm ROLLOUTS --out \(path)`, or use --value qvm for the shipped model"
        case .modelCorrupt(let path, let why):
            return "QVM model file \(path) is corrupt (\(why)): retrain it with `qcode train-qvm`"
        case .modelVersion(let path, let found, let expected):
            return "QVM model file \(path) has format version \(found), this qcode reads version \(expected): retrain it with this qcode's `train-qvm`"
        case .noTrainingData(let path):
            return "\(path) holds no usable rollouts: run `qcode rollouts` first"
        }
    }
}

