// swift-tools-version: 6.1
//
// XenViridian: a Xen-to-Viridian hypercall translation layer.
// Core modules (GuestABI, XenABI, ViridianABI, XenViridian) import no Foundation and build as
// Embedded Swift (see .ci/embedded-build). The CLI, the generator and the tests may use Foundation.
import PackageDescription

let package = Package(
    name: "XenViridian",
    products: [
        // Every module whose types an embedder names is a product, so a package that depends
        // on this one never imports an internal target.
        .library(name: "GuestABI", targets: ["GuestABI"]),
        .library(name: "XenABI", targets: ["XenABI"]),
        .library(name: "ViridianABI", targets: ["ViridianABI"]),
        .library(name: "XenCore", targets: ["XenCore"]),
        .library(name: "XVEmbedding", targets: ["XVEmbedding"]),
        .library(name: "XenViridian", type: .static, targets: ["XenViridian"]),
        .library(name: "XenNative", type: .static, targets: ["XenNative"]),
        .library(name: "XVScenarios", targets: ["XVScenarios"]),
        .library(name: "XVConformance", targets: ["XVConformance"]),
        .library(name: "ViridianReference", type: .static, targets: ["ViridianReference"]),
        // The C ABI (include/xen_viridian.h) as a static library: the layer, the native
        // baseline and the reference hypervisor behind thin `@c` exports.
        .library(name: "XenViridianC", type: .static, targets: ["XenViridianC"]),
        .executable(name: "xv", targets: ["xv"]),
        .executable(name: "xv-specgen", targets: ["xv-specgen"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // Core: no Foundation, Embedded-clean.
        .target(name: "GuestABI", dependencies: ["CGuestAtomics"]),
        .target(name: "XenABI", dependencies: ["GuestABI"]),
        .target(name: "ViridianABI", dependencies: ["GuestABI"]),
        // Atomic RMW on guest memory for the core (header-only C; Embedded-clean).
        .target(name: "CGuestAtomics"),
        // Xen semantics shared by the native baseline and the layer: dispatch, domain state.
        .target(name: "XenCore", dependencies: ["GuestABI", "XenABI", "ViridianABI", "CGuestAtomics"]),
        // The native Xen baseline: XenCore over a direct fabric.
        .target(name: "XenNative", dependencies: ["GuestABI", "XenABI", "XenCore", "CGuestAtomics"]),
        // The translation layer: XenCore over the Viridian target.
        .target(name: "XenViridian", dependencies: ["GuestABI", "XenABI", "ViridianABI", "XenCore", "CGuestAtomics"]),
        .target(name: "ViridianReference", dependencies: ["CGuestAtomics", "GuestABI", "ViridianABI"]),

        // The C ABI: the header (include/xen_viridian.h, also the module the Swift side imports),
        // the embedding logic behind it, and the `@c` exports that only convert arguments.
        .target(name: "CXenViridian", path: "include", publicHeadersPath: "."),
        .target(name: "XVEmbedding", dependencies: ["CGuestAtomics", "CXenViridian", "GuestABI", "XenABI", "ViridianABI", "XenCore",
                                                    "XenNative", "XenViridian", "ViridianReference"]),
        .target(name: "XenViridianC", dependencies: ["CXenViridian", "XenCore", "XVEmbedding"]),

        // Native and translated worlds over in-process RAM and ViridianReference, the test guest's
        // calls, and the benchmark operations: shared by the tests, `xv bench` and Benchmarks/.
        .target(name: "XVScenarios", dependencies: ["CGuestAtomics", "GuestABI", "XenABI", "ViridianABI", "ViridianReference", "XenCore", "XenNative", "XenViridian", "CBlkifRing"]),

        // Conformance vectors (Specs/README.md): the format's parser and the runner that plays
        // them on both sides.
        .target(name: "XVConformance", dependencies: ["GuestABI", "XenABI", "XenCore", "XVScenarios", "XVSpecCatalog"]),

        // Every spec row as data, for `xv specs` and the conformance tests (generated).
        .target(name: "XVSpecCatalog"),

        // The generator: Specs/*.tbl -> Sources/*/Generated, Tests/*/Generated.
        .target(name: "XVSpecGen"),
        .executableTarget(name: "xv-specgen", dependencies: ["XVSpecGen"]),

        // The KVM host (issue: real guests through the layer): KVM's request numbers and
        // structures from <linux/kvm.h>, and the host itself (VM, vCPU, console, watchdog).
        .target(name: "CKVM"),
        .target(name: "XVKVMHost", dependencies: ["CKVM", "CXenViridian", "XenViridianC", "GuestABI", "XenABI"]),

        // xv bench's clock: the fenced time-stamp counter where there is one (header-only C).
        .target(name: "CBenchClock"),

        // The command-line tool.
        .executableTarget(
            name: "xv",
            dependencies: [
                "XVSpecCatalog", "XVScenarios", "XVConformance", "XVKVMHost", "CMallocCounter", "CBenchClock",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Test support: the C compiler's view of libxen-dev (empty when the headers are absent).
        .target(name: "CXenProbe", path: "Tests/Support/CXenProbe"),
        // A blkif frontend and backend in C over libxen-dev's ring.h and blkif.h (tests and
        // `xv bench`; empty when the headers are absent at build time).
        .target(name: "CBlkifRing", path: "Tests/Support/CBlkifRing"),
        // Test support: per-thread malloc counting for the zero-allocation tests (Linux/glibc).
        .target(name: "CMallocCounter", path: "Tests/Support/CMallocCounter"),
        // Test support: a seeded generator and the "row named by a test" scan.
        .target(name: "XVTestSupport", path: "Tests/Support/XVTestSupport"),

        .testTarget(name: "XVSpecGenTests", dependencies: ["XVSpecGen"], exclude: ["Fixtures", "Golden"]),
        .testTarget(name: "XVTests", dependencies: ["xv", "XVSpecCatalog", "XVScenarios", "XVConformance"]),
        .testTarget(name: "ABITests", dependencies: ["GuestABI", "XenABI", "ViridianABI", "XenCore", "XVSpecCatalog"]),
        .testTarget(
            name: "ViridianReferenceTests",
            dependencies: ["CGuestAtomics", "GuestABI", "ViridianABI", "ViridianReference", "XVSpecCatalog", "CMallocCounter", "XVTestSupport"]
        ),
        .testTarget(
            name: "XenLayerTests",
            dependencies: ["CGuestAtomics", "GuestABI", "XenABI", "ViridianABI", "ViridianReference", "XenCore", "XenNative", "XenViridian",
                           "XVScenarios", "XVSpecCatalog", "CMallocCounter", "XVTestSupport", "CBlkifRing"]
        ),
        .testTarget(name: "KVMHostTests", dependencies: ["XVKVMHost", "CKVM"]),
        .testTarget(name: "CABITests", dependencies: ["CXenViridian", "XenViridianC", "XVEmbedding", "CMallocCounter", "CGuestAtomics", "XVTestSupport", "GuestABI", "ViridianABI", "ViridianReference"]),
        .testTarget(
            name: "XenABIConformanceTests",
            dependencies: ["GuestABI", "XenABI", "ViridianABI", "XVSpecCatalog", "CXenProbe"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
