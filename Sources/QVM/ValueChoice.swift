import CodeDomain
import Foundation
import Synchronization

/// Resolves every `ValueChoice`, the learned ones included: what the CLI, the
/// daemon and the benchmark hand to `Solver`. Loaded models are kept, so a
/// daemon reads a QVM file once, not once per solve.
public final class ValueModels: ValueModelResolver {
    private let loaded = Mutex<[String: CodeValueModel]>([:])

    public init() {}

    public func resolve(_ choice: ValueChoice) throws -> CodeValueModel {
        switch choice.kind {
        case .zero: return .zero
        case .logprob: return .logprob
        case .qvm:
            let key = choice.path ?? ""
            if let hit = loaded.withLock({ $0[key] }) { return hit }
            let model = try (choice.path.map(QValueModel.load(from:)) ?? QValueModel.shipped()).codeValueModel
            loaded.withLock { $0[key] = model }
            return model
        }
    }
}
