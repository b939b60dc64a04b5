/// SplitMix64 (Steele, Lea and Flood): a tiny seeded generator whose outputs
/// differ in every bit for adjacent seeds, so per-expansion, per-task and
/// per-epoch seeds derived from one user seed are independent yet reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.finalize(state)
    }

    /// The i-th output of the generator seeded with `seed`, without stepping one:
    /// a stable seed for "expansion i of the search seeded s".
    public static func mix(_ seed: UInt64, _ i: UInt64) -> UInt64 {
        finalize(seed &+ (i &+ 1) &* 0x9E37_79B9_7F4A_7C15)
    }

    static func finalize(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
