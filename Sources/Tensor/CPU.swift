// Which kernels run, decided in one place. The C kernels (Sources/CKernels) are compiled for several instruction
// sets through target attributes, and every call passes `CPU.isa`: the widest set this CPU has, or a lower one
// forced by the environment (R2EC_ISA=avx2 on an AVX-512 machine measures the AVX2 kernels) or by a test that runs
// every path (`CPU.withISA`). A set the CPU lacks is never chosen.
import CKernels
import Foundation

/// The kernel families, each a superset of the one before (CKernels' r2ec_isa).
public enum KernelISA: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    /// Plain C and Swift SIMD at the baseline x86-64 (SSE2); OpenBLAS for unpacked GEMMs.
    case portable = 0
    /// AVX2 + FMA + F16C.
    case avx2 = 1
    /// AVX-512F.
    case avx512 = 2

    public static func < (a: KernelISA, b: KernelISA) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .portable: return "portable"
        case .avx2: return "avx2"
        case .avx512: return "avx512"
        }
    }

    /// Parses R2EC_ISA's values (the descriptions above).
    public init?(name: String) {
        guard let isa = KernelISA.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = isa
    }

    /// CKernels' value for this set.
    public var c: r2ec_isa { r2ec_isa(rawValue: UInt32(rawValue)) }
}

public enum CPU {
    /// The widest instruction set this CPU runs.
    public static let detected = KernelISA(rawValue: Int(r2ec_cpu_isa().rawValue)) ?? .portable

    /// Whether the CPU has AVX512_BF16 (vdpbf16ps), which the bfloat16 kernels need besides AVX-512F.
    public static let detectedBF16 = r2ec_cpu_has_bf16() != 0

    /// Every instruction set this CPU runs, the widest last (tests loop over these).
    public static var available: [KernelISA] { KernelISA.allCases.filter { $0 <= detected } }

    /// The set the kernels use: `detected`, or R2EC_ISA when that names a set at most as wide (a wider one, or a
    /// name that is no set, stops the process with a message: a benchmark must not silently measure another path).
    nonisolated(unsafe) public private(set) static var isa: KernelISA = initialISA()

    /// Whether the bfloat16 kernels can run under the current `isa`.
    public static var hasBF16: Bool { isa == .avx512 && detectedBF16 }

    /// Runs `body` with the kernels of `isa` (at most `detected`), then restores the previous choice. For tests and
    /// benchmarks comparing paths; not while another thread runs kernels.
    public static func withISA<T>(_ isa: KernelISA, _ body: () throws -> T) rethrows -> T {
        precondition(isa <= detected, "this CPU cannot run the \(isa) kernels (it has \(detected))")
        let saved = self.isa
        self.isa = isa
        defer { self.isa = saved }
        return try body()
    }

    /// Runs `body` once under every instruction set this CPU has (portable first): tests hold each path to the same
    /// references on every machine.
    public static func forEachAvailable(_ body: (KernelISA) throws -> Void) rethrows {
        for isa in available { try withISA(isa) { try body(isa) } }
    }

    static func initialISA() -> KernelISA {
        guard let text = ProcessInfo.processInfo.environment["R2EC_ISA"], !text.isEmpty else { return detected }
        guard let forced = KernelISA(name: text) else {
            fatalError("R2EC_ISA=\(text): expected one of \(KernelISA.allCases.map(\.description).joined(separator: ", "))")
        }
        guard forced <= detected else {
            fatalError("R2EC_ISA=\(text): this CPU runs at most the \(detected) kernels")
        }
        return forced
    }
}
