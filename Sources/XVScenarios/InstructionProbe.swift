import CGuestAtomics

/// What `xv bench --instructions` runs under callgrind (a hidden mode of `xv bench`): each
/// operation's measured call, N times on each side, in phases that callgrind separates by
/// dumps. Which instructions count is decided by callgrind's `--toggle-collect`, which flips
/// collection on entry to and on return from the functions it names:
///
/// - `xv_cg_native_op` (toggled): every instruction of the native operation;
/// - `xv_cg_translated_layer_op` (toggled), with the reference boundary (`xv_cg_reference_*`)
///   and the way back into the layer (`xv_cg_layer_from_reference`) toggled too: on in the
///   layer, off in the reference, on again where the reference's interrupt reaches the layer,
///   so only the layer's own instructions count;
/// - `xv_cg_translated_op` (not toggled), with the same boundary toggles: off in the layer,
///   on in the reference, so only the reference's instructions count (the router's interrupt
///   injection, the embedder's virtual APIC, counts with the reference).
///
/// The translated total is the sum of the last two. Each phase starts and ends with a dump
/// (`xv_cg_dump`), so what the set-up and the warm-up did falls into a discarded dump, and a
/// phase of resets alone checks that nothing outside the measured call reaches a toggled
/// function (it must count 0).
public enum InstructionProbe {
    /// The phases a probe runs, in order; each is one dump of callgrind's.
    public enum Mode: String, CaseIterable, Sendable {
        /// The native call, all of it.
        case native
        /// The translated call, the layer's own instructions.
        case layer
        /// The translated call, the reference hypervisor's instructions.
        case reference
        /// Resets only, with the boundary toggles armed: must count nothing.
        case resetOnly = "reset_only"
    }

    /// The native side's measured call (toggled).
    public static let nativeSymbol = "xv_cg_native_op"
    /// The translated side's measured call in the layer mode (toggled).
    public static let layerSymbol = "xv_cg_translated_layer_op"
    /// Every entry into the reference (`ReferenceBoundary`), as a callgrind pattern (toggled).
    public static let referenceSymbols = "xv_cg_reference_*"
    /// The reference's interrupt reaching the layer (toggled).
    public static let layerReentrySymbol = "xv_cg_layer_from_reference"
    /// Where callgrind dumps (`--dump-before`).
    public static let dumpSymbol = "xv_cg_dump"

    /// Runs every phase of `operation` (set up on fresh worlds of `shape`, warmed up on both sides), and
    /// reports each phase after its closing dump: (mode, iterations). `counts` are the N
    /// values whose difference gives the per-operation figure.
    public static func run(_ operation: BenchOperation, shape: BenchWorldShape = .standard, counts: [Int], warmup: Int, phase: (Mode, Int) -> Void) {
        let pair = BenchPair(operation, shape: shape)
        for _ in 0..<warmup {
            pair.resetNative(); precondition(nativeOp(pair) == 0)
            pair.resetTranslated(); precondition(translatedLayerOp(pair) == 0)
            pair.resetTranslated(); precondition(translatedOp(pair) == 0)
        }
        for mode in Mode.allCases {
            for n in counts {
                callgrindDump(0)
                var failed: Int64 = 0
                for _ in 0..<n {
                    switch mode {
                    case .native: pair.resetNative(); failed |= nativeOp(pair)
                    case .layer: pair.resetTranslated(); failed |= translatedLayerOp(pair)
                    case .reference: pair.resetTranslated(); failed |= translatedOp(pair)
                    case .resetOnly: pair.resetTranslated(); pair.resetNative()
                    }
                }
                callgrindDump(1)
                precondition(failed == 0, "a probed hypercall failed")
                phase(mode, n)
            }
        }
    }
}

/// Where callgrind dumps (`--dump-before`). It stores to memory so that the call is not
/// removed as having no effect.
@_silgen_name("xv_cg_dump") @inline(never)
func callgrindDump(_ marker: UInt64) { xv_store_relaxed_u64(dumpMarker, marker) }
nonisolated(unsafe) let dumpMarker: UnsafeMutablePointer<UInt64> = {
    let p = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    p.initialize(to: 0)
    return p
}()

@_silgen_name("xv_cg_native_op") @inline(never)
func nativeOp(_ pair: BenchPair) -> Int64 { pair.runNative() }

@_silgen_name("xv_cg_translated_layer_op") @inline(never)
func translatedLayerOp(_ pair: BenchPair) -> Int64 { pair.runTranslated() }

/// The store keeps this body different from `translatedLayerOp`'s, so that the optimiser
/// cannot merge the two into one symbol (it is outside what this mode counts).
@_silgen_name("xv_cg_translated_op") @inline(never)
func translatedOp(_ pair: BenchPair) -> Int64 {
    xv_store_relaxed_u64(dumpMarker, 2)
    return pair.runTranslated()
}
