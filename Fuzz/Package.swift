// swift-tools-version: 6.1
//
// libFuzzer targets (a separate package, as Benchmarks/ is: built with the fuzzer and address
// sanitizers, which the library itself must not carry). Build and run with .ci/fuzz; each
// target is an executable whose entry point is libFuzzer's LLVMFuzzerTestOneInput.
import PackageDescription

let package = Package(
    name: "XenViridianFuzz",
    dependencies: [.package(name: "XenViridian", path: "..")],
    targets: [
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzSystems", dependencies: [.product(name: "XenViridianC", package: "XenViridian")]),
        .executableTarget(name: "fuzz-vector-parser", dependencies: ["CFuzzDriver", .product(name: "XVConformance", package: "XenViridian")]),
        .executableTarget(name: "fuzz-reference", dependencies: ["CFuzzDriver", .product(name: "ViridianReference", package: "XenViridian"),
                                                              .product(name: "GuestABI", package: "XenViridian"), .product(name: "ViridianABI", package: "XenViridian")]),
        .executableTarget(name: "fuzz-hypercall", dependencies: ["CFuzzDriver", "FuzzSystems", .product(name: "XenViridianC", package: "XenViridian")]),
        .executableTarget(name: "fuzz-image", dependencies: ["CFuzzDriver", "FuzzSystems", .product(name: "XenViridianC", package: "XenViridian"),
                                                          .product(name: "GuestABI", package: "XenViridian")]),
    ]
)
