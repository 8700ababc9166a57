import Foundation
import XVScenarios

/// `xv bench --svg`: a chart a person can open. The first panel has one row per operation, with
/// native and translated p50 as bars on a shared logarithmic scale, their values, and the ratio.
/// The second panel has the scaling runs (each operation's mean at each setting) and the world
/// creation times, then the instructions per operation when they were counted (native, and
/// translated split into the layer's own work and the reference hypervisor's), then the
/// throughput scenarios (sends per second on each side) and the blkif ring's request rate, when
/// they ran. The SVG has no scripts and no external references.
struct BenchChart {
    struct Bar {
        var label: String
        var native: Double
        var translated: Double
        var unit: String
        /// The part of `translated` that is the layer's own work (the rest is the reference
        /// hypervisor's), drawn as a split bar; nil for a plain one.
        var layer: Double? = nil
    }

    var title: String
    var operations: [Bar]
    var throughput: [Bar]
    var ring: Bar?
    /// The scaling runs: each operation's mean at each setting, and world creation.
    var scaling: [Bar] = []
    var creation: [Bar] = []
    /// The scaling panel's note when a figure did not stay flat.
    var notFlat = 0
    /// Instructions per operation (callgrind), when they were counted.
    var instructions: [Bar] = []

    /// The label column fits the longest scaling label; the ratio column stays clear of the
    /// bars' value labels.
    static let width = 1120.0, rowHeight = 34.0, labelWidth = 300.0, ratioWidth = 170.0, valueWidth = 80.0
    static var barArea: Double { width - labelWidth - ratioWidth - valueWidth }
    static let layerColour = "#f58518", referenceColour = "#fdd0a2", nativeColour = "#4c78a8"

    init(title: String, results: [BenchRunner.Result], throughput: [ThroughputRunner.Result], ring: RingRunner.Result?, scaling report: ScalingReport? = nil,
         instructions counts: [BenchOperation: InstructionCounter.Counts] = [:]) {
        self.title = title
        instructions = results.compactMap { r in
            counts[r.operation].map { Bar(label: r.operation.rawValue, native: $0.native, translated: $0.translated, unit: "instr", layer: $0.layer) }
        }
        operations = results.map {
            Bar(label: $0.operation.rawValue, native: BenchRunner.percentile($0.native, 0.5), translated: BenchRunner.percentile($0.translated, 0.5), unit: "ns")
        }
        self.throughput = throughput.map {
            Bar(label: $0.scenario.rawValue, native: $0.native.opsPerSecond / 1e6, translated: $0.translated.opsPerSecond / 1e6, unit: "M/s")
        }
        self.ring = ring.map { Bar(label: "blkif ring", native: $0.native.requestsPerSecond / 1e6, translated: $0.translated.requestsPerSecond / 1e6, unit: "M req/s") }
        if let report {
            scaling = report.points.flatMap { p in
                p.results.map { Bar(label: "\(p.dimension.rawValue)=\(p.value) \($0.operation.rawValue)", native: $0.nativeMean, translated: $0.translatedMean, unit: "ns") }
            }
            creation = report.creation.map { Bar(label: "world of \($0.domains) domains", native: $0.nativeNs / 1e6, translated: $0.translatedNs / 1e6, unit: "ms") }
            notFlat = report.notFlat.count
        }
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func format(_ v: Double) -> String { v >= 100 ? String(format: "%.0f", v) : v >= 10 ? String(format: "%.1f", v) : String(format: "%.2f", v) }

    /// One panel: a heading, then a row per bar with both sides, scaled to the panel's largest
    /// value (`logarithmic` for times spanning orders of magnitude).
    static func panel(_ heading: String, _ bars: [Bar], top: Double, logarithmic: Bool, higherIsBetter: Bool) -> (String, Double) {
        var out = "<text x=\"16\" y=\"\(top + 22)\" font-size=\"16\" font-weight=\"bold\">\(escape(heading))</text>\n"
        let largest = max(bars.map { max($0.native, $0.translated) }.max() ?? 1, 1e-9)
        func length(_ v: Double) -> Double {
            guard v > 0 else { return 0 }
            if logarithmic { return barArea * log10(1 + v) / log10(1 + largest) }
            return barArea * v / largest
        }
        var y = top + 36
        for bar in bars {
            let ratio = bar.native > 0 ? bar.translated / bar.native : 0
            out += "<text x=\"16\" y=\"\(y + 20)\" font-size=\"12\">\(escape(bar.label))</text>\n"
            out += "<rect x=\"\(labelWidth)\" y=\"\(y + 3)\" width=\"\(length(bar.native))\" height=\"12\" fill=\"\(nativeColour)\"><title>native \(format(bar.native)) \(bar.unit)</title></rect>\n"
            if let layer = bar.layer {
                // Linear scale here (the split must read true): the layer's part, then the reference's.
                out += "<rect x=\"\(labelWidth)\" y=\"\(y + 17)\" width=\"\(length(layer))\" height=\"12\" fill=\"\(layerColour)\"><title>layer \(format(layer)) \(bar.unit)</title></rect>\n"
                out += "<rect x=\"\(labelWidth + length(layer))\" y=\"\(y + 17)\" width=\"\(max(length(bar.translated) - length(layer), 0))\" height=\"12\" fill=\"\(referenceColour)\"><title>reference \(format(bar.translated - layer)) \(bar.unit)</title></rect>\n"
            } else {
                out += "<rect x=\"\(labelWidth)\" y=\"\(y + 17)\" width=\"\(length(bar.translated))\" height=\"12\" fill=\"\(layerColour)\"><title>translated \(format(bar.translated)) \(bar.unit)</title></rect>\n"
            }
            out += "<text x=\"\(labelWidth + length(bar.native) + 4)\" y=\"\(y + 14)\" font-size=\"10\">\(format(bar.native)) \(bar.unit)</text>\n"
            out += "<text x=\"\(labelWidth + length(bar.translated) + 4)\" y=\"\(y + 28)\" font-size=\"10\">\(format(bar.translated)) \(bar.unit)</text>\n"
            let layerNote = bar.layer.map { bar.native > 0 ? String(format: ", layer %.2f", $0 / bar.native) : "" } ?? ""
            out += "<text x=\"\(width - 16)\" y=\"\(y + 22)\" font-size=\"12\" text-anchor=\"end\">\(higherIsBetter ? "translated/native" : "ratio") \(String(format: "%.2f", ratio))\(layerNote)</text>\n"
            y += rowHeight
        }
        return (out, y)
    }

    var svg: String {
        var body = ""
        var y = 52.0
        let (ops, afterOps) = Self.panel("p50 per operation (ns, logarithmic)", operations, top: y, logarithmic: true, higherIsBetter: false)
        body += ops
        y = afterOps + 16
        if !scaling.isEmpty {
            let heading = "scaling: mean per operation (ns, logarithmic) by FIFO ports, domains and vCPUs"
                + (notFlat == 0 ? ": flat" : ": \(notFlat) figures not flat (see the table)")
            let (sp, after) = Self.panel(heading, scaling, top: y, logarithmic: true, higherIsBetter: false)
            body += sp
            y = after + 16
            let (cp, afterCreation) = Self.panel("create and destroy a world (ms)", creation, top: y, logarithmic: false, higherIsBetter: false)
            body += cp
            y = afterCreation + 16
        }
        if !instructions.isEmpty {
            let (ip, after) = Self.panel("instructions per operation (callgrind; translated = layer, then reference)", instructions, top: y, logarithmic: false, higherIsBetter: false)
            body += ip
            y = after + 16
        }
        if !throughput.isEmpty {
            let (tp, after) = Self.panel("throughput, threads at once (million sends per second)", throughput, top: y, logarithmic: false, higherIsBetter: true)
            body += tp
            y = after + 16
        }
        if let ring {
            let (rp, after) = Self.panel("blkif ring between two domains (million requests per second)", [ring], top: y, logarithmic: false, higherIsBetter: true)
            body += rp
            y = after + 16
        }
        let height = y + 24
        return """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(Self.width))" height="\(Int(height))" viewBox="0 0 \(Int(Self.width)) \(Int(height))" font-family="sans-serif">
        <rect width="100%" height="100%" fill="white"/>
        <text x="16" y="24" font-size="18" font-weight="bold">\(Self.escape(title))</text>
        <rect x="16" y="34" width="12" height="12" fill="\(Self.nativeColour)"/><text x="32" y="44" font-size="12">native (XenNative)</text>
        <rect x="170" y="34" width="12" height="12" fill="\(Self.layerColour)"/><text x="186" y="44" font-size="12">translated (XenViridian over ViridianReference; in the instruction panel, the layer's own work)</text>
        <rect x="760" y="34" width="12" height="12" fill="\(Self.referenceColour)"/><text x="776" y="44" font-size="12">the reference hypervisor's work</text>
        \(body)</svg>

        """
    }
}
