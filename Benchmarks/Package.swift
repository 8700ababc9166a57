// swift-tools-version: 6.1
//
// Native against translated, side by side in one run (ordo-one/benchmark). A separate package
// so the main build stays fast; it depends on the main package by path.
// Run: cd Benchmarks && swift package benchmark
import PackageDescription

let package = Package(
    name: "XenViridianBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "XenViridian", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "EventChannels",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "XVScenarios", package: "XenViridian"),
            ],
            path: "Benchmarks/EventChannels",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
