// Starts libFuzzer from a SwiftPM executable: SwiftPM links each executable's main.swift as `main`, so every
// target's main.swift calls fuzzMain(test) and libFuzzer's own driver (LLVMFuzzerRunDriver) takes the arguments.

public typealias FuzzTest = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ test: FuzzTest) -> CInt

/// Runs libFuzzer with the process arguments and `test` as LLVMFuzzerTestOneInput; never returns.
public func fuzzMain(_ test: FuzzTest) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, test))
}

/// The input as a Swift byte array (libFuzzer passes a NULL pointer for the empty input).
public func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

#if canImport(Glibc)
import Glibc
#endif

