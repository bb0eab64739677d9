// swift-tools-version: 6.1
// r2ec: a dual-head recommender network served over a framed protobuf RPC protocol on libuv.
// Layers (data flows one way): RPC -> Serving -> Model -> Tensor; Train and Eval use Model and Data; Store
// implements Data's EventStore over SQLite and PostgreSQL.
import PackageDescription

/// Numeric targets are compiled without bounds checks in release builds; tests run debug builds with them.
let fastMath: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "r2ec",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "r2ec", targets: ["r2ec"]),
    ],
    // GRPC (on by default): the gRPC front door (`r2ec serve --grpc-port`), grpc-swift 2 on swift-nio. The sanitizer
    // builds turn it off (`--disable-default-traits`): its dependencies would triple their build time, and the door
    // is tested by the Python grpcio suite against the debug build.
    traits: [
        .trait(name: "GRPC", description: "The gRPC front door (grpc-swift 2, swift-nio, swift-nio-ssl)"),
        .default(enabledTraits: ["GRPC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", exact: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", exact: "2.9.2"),
        // `r2ec serve --config FILE`: YAML (libyaml's C sources, built in about a minute; no other dependencies).
        .package(url: "https://github.com/jpsim/Yams", exact: "6.2.2"),
        // Latency percentiles of the load generators (`r2ec bench rpc|serve`).
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", exact: "0.2.0"),
        // `r2ec mcp`: the Model Context Protocol (its MCP library needs only swift-log and swift-system on Linux).
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", exact: "0.12.1"),
    ],
    targets: [
        // System-library shims over Debian's -dev packages, nothing else.
        .systemLibrary(name: "CLibUV", pkgConfig: "libuv", providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "CProtobufC", pkgConfig: "libprotobuf-c", providers: [.apt(["libprotobuf-c-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHTTPParser", providers: [.apt(["libhttp-parser-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // protobuf-c code generated from Protos/ by scripts/gen-protos.sh (committed).
        .target(name: "R2ecProtoC", dependencies: ["CProtobufC"], cSettings: [.unsafeFlags(["-Wno-everything"])]),

        // C kernels chosen at run time by CPU features (packed-weight GEMM, decode attention).
        .target(name: "CKernels"),
        // The loopback floor of `r2ec bench rpc`: a bare epoll server and closed-loop client in C.
        .target(name: "CLoopbackFloor"),

        .target(name: "Tensor", dependencies: ["COpenBLAS", "CKernels"], swiftSettings: fastMath),
        .target(name: "Data", swiftSettings: fastMath),
        // Collective operations over every process of a run: Open MPI under mpirun, the identity alone.
        .target(name: "Collectives", dependencies: ["CMPI"]),
        .target(name: "Model", dependencies: ["Tensor", "Data", "CKernels"], swiftSettings: fastMath),
        .target(name: "Eval", dependencies: ["Data", "Tensor", "COpenBLAS"], swiftSettings: fastMath),
        .target(name: "Train", dependencies: ["Model", "Data", "Eval", "Tensor", "Collectives", "CKernels"], swiftSettings: fastMath),
        // The live loop's store: SQLite through GRDB, PostgreSQL through libpq (the EventStore protocol is in Data).
        .target(name: "Store", dependencies: ["Data", "CLibPQ", .product(name: "GRDB", package: "GRDB.swift")]),
        .target(name: "Serving", dependencies: ["Model", "Data", "Eval", .product(name: "Logging", package: "swift-log"),
                                                .product(name: "Prometheus", package: "swift-prometheus")],
                swiftSettings: fastMath),
        .target(name: "RPC", dependencies: ["Serving", "Data", "R2ecProtoC", "CProtobufC", "CLibUV", "CHTTPParser",
                                            .product(name: "Logging", package: "swift-log"),
                                            .product(name: "Histogram", package: "hdrhistogram-swift")]),
        // The gRPC front door: raw protobuf bytes from grpc-swift 2 to the service router (only with the GRPC trait).
        .target(name: "GRPCDoor", dependencies: [
            "RPC", "Serving",
            .product(name: "GRPCCore", package: "grpc-swift-2", condition: .when(traits: ["GRPC"])),
            .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport",
                     condition: .when(traits: ["GRPC"])),
        ]),
        // Settings files and R2EC_* environment variables turned into a command's arguments (`serve --config`).
        .target(name: "Config", dependencies: [.product(name: "Yams", package: "Yams")]),
        // `r2ec mcp`: recommend, search, look up, similar items and feedback as MCP tools, each one RPC to a server.
        .target(name: "AgentTools", dependencies: ["RPC", "Serving", .product(name: "MCP", package: "swift-sdk")]),
        .executableTarget(name: "r2ec", dependencies: [
            "GRPCDoor", "Config", "AgentTools", "CLoopbackFloor",
            "RPC", "Serving", "Store", "Train", "Eval", "Model", "Data", "Tensor", "Collectives",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: fastMath),

        .testTarget(name: "TensorTests", dependencies: ["Tensor", "CKernels", "Data"]),
        .testTarget(name: "DataTests", dependencies: ["Data"]),
        .testTarget(name: "CollectivesTests", dependencies: ["Collectives", "Data"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Tensor", "Data"]),
        .testTarget(name: "EvalTests", dependencies: ["Eval", "Data", "Tensor", "COpenBLAS"]),
        .testTarget(name: "TrainTests", dependencies: ["Train", "Model", "Tensor", "Collectives", "Data"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Data", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Data", "Eval", "Model", "Store", "Train",
                                                  .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "GRPCDoorTests", dependencies: ["GRPCDoor", "RPC", "Serving"]),
        .testTarget(name: "ConfigTests", dependencies: ["Config", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "AgentToolsTests", dependencies: ["AgentTools", "RPC", "Serving", "Data", "Eval",
                                                       .product(name: "MCP", package: "swift-sdk")]),
        .testTarget(name: "RPCTests", dependencies: ["RPC", "R2ecProtoC", "CProtobufC", "Serving", "Data", "Eval", "CLoopbackFloor"]),
    ],
    swiftLanguageModes: [.v5]
)
