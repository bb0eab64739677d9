// swift-tools-version: 6.0
// r2ec's libFuzzer targets, a package of its own so that the root package's build and CI never compile them.
// Mirror/ holds symlinks to the root's Sources/<Target>: the library targets are rebuilt here with the fuzzer's
// coverage and AddressSanitizer (scripts/fuzz.sh passes -sanitize=fuzzer,address to every module). The target
// graph below repeats the root Package.swift's for these targets: keep their dependencies in step with it.
import PackageDescription

let package = Package(
    name: "r2ec-fuzz",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", exact: "0.2.0"),
    ],
    targets: [
        .systemLibrary(name: "CLibUV", path: "Mirror/CLibUV", pkgConfig: "libuv"),
        .systemLibrary(name: "CProtobufC", path: "Mirror/CProtobufC", pkgConfig: "libprotobuf-c"),
        .systemLibrary(name: "COpenBLAS", path: "Mirror/COpenBLAS", pkgConfig: "openblas"),
        .systemLibrary(name: "CHTTPParser", path: "Mirror/CHTTPParser"),
        .target(name: "R2ecProtoC", dependencies: ["CProtobufC"], path: "Mirror/R2ecProtoC",
                cSettings: [.unsafeFlags(["-Wno-everything"])]),
        .target(name: "CKernels", path: "Mirror/CKernels"),
        .target(name: "Tensor", dependencies: ["COpenBLAS", "CKernels"], path: "Mirror/Tensor"),
        .target(name: "Data", path: "Mirror/Data"),
        .target(name: "Model", dependencies: ["Tensor", "Data", "CKernels"], path: "Mirror/Model"),
        .target(name: "Eval", dependencies: ["Data", "Tensor", "COpenBLAS"], path: "Mirror/Eval"),
        .target(name: "Serving", dependencies: ["Model", "Data", "Eval", .product(name: "Logging", package: "swift-log"),
                                                .product(name: "Prometheus", package: "swift-prometheus")],
                path: "Mirror/Serving"),
        .target(name: "RPC", dependencies: ["Serving", "Data", "R2ecProtoC", "CProtobufC", "CLibUV", "CHTTPParser",
                                            .product(name: "Logging", package: "swift-log"),
                                            .product(name: "Histogram", package: "hdrhistogram-swift")],
                path: "Mirror/RPC"),

        .target(name: "FuzzSupport", path: "Targets/FuzzSupport"),
        .executableTarget(name: "FuzzFrames", dependencies: ["FuzzSupport", "RPC", "Data"], path: "Targets/FuzzFrames"),
        .executableTarget(name: "FuzzProto", dependencies: ["FuzzSupport", "RPC", "R2ecProtoC", "CProtobufC", "Serving"],
                          path: "Targets/FuzzProto"),
        .executableTarget(name: "FuzzConnection", dependencies: ["FuzzSupport", "RPC", "Serving", "Data"],
                          path: "Targets/FuzzConnection"),
        .executableTarget(name: "FuzzDatasets", dependencies: ["FuzzSupport", "Data"], path: "Targets/FuzzDatasets"),
        .executableTarget(name: "FuzzCheckpoint", dependencies: ["FuzzSupport", "Model"], path: "Targets/FuzzCheckpoint"),
        .executableTarget(name: "FuzzTokenizer", dependencies: ["FuzzSupport", "Model"], path: "Targets/FuzzTokenizer"),
    ],
    swiftLanguageModes: [.v5]
)
