/// What `XenHost` runs: one or more PVH guests, each a domain in its own KVM VM, over one
/// side of the library.
public struct XenHostConfiguration: Sendable {
    /// Which side answers the guests' hypercalls.
    public enum Side: String, Sendable {
        /// The native baseline (XV_SIDE_NATIVE): Xen's own handling.
        case native
        /// The translation layer over the bundled reference Viridian hypervisor (XV_SIDE_TRANSLATED).
        case translated
    }

    /// One guest: its image, its command line (hvm_start_info's), its xenstore name, its RAM.
    public struct Guest: Sendable {
        /// The PVH kernel.
        public var image: PVHImage
        /// hvm_start_info's command line.
        public var commandLine: String
        /// The guest's name.
        public var name: String
        /// Guest RAM in MiB (2 ... 4096), the top 8 frames reserved for the host.
        public var memoryMiB: Int
        /// vCPUs (1 ... 32); vCPU 0 starts at the PVH entry.
        public var vcpus: Int

        /// A guest with these properties.
        public init(image: PVHImage, commandLine: String = "", name: String = "guest", memoryMiB: Int = 32, vcpus: Int = 1) {
            self.image = image
            self.commandLine = commandLine
            self.name = name
            self.memoryMiB = memoryMiB
            self.vcpus = vcpus
        }
    }

    /// The side that answers the hypercalls.
    public var side: Side
    /// Domain ids 1, 2, ... in this order.
    public var guests: [Guest]
    /// The wall-clock limit of the whole run: a guest still running then is stopped.
    public var timeout: Duration
    /// The clock thread's period: how often the guests' TSC is published to the library
    /// (xv_set_guest_tsc), which fires the translated side's timers; the native side's
    /// timers also wake it at their deadlines.
    public var tick: Duration
    /// Copy each console line to standard output as it arrives.
    public var echo: Bool
    /// Record every hypercall (number, arguments, result) for a conformance vector.
    public var recordHypercalls: Bool
    /// CPU features to hide from the guests' CPUID, for a KVM that cannot run them (a software
    /// KVM may not emulate every instruction: this development machine's does not emulate
    /// CMPXCHG16B, which Linux uses when CPUID offers it).
    public var hiddenFeatures: [XenHostCPUFeature] = []

    /// A run of `guests` on `side`.
    public init(side: Side, guests: [Guest], timeout: Duration = .seconds(60), tick: Duration = .microseconds(500), echo: Bool = false,
                recordHypercalls: Bool = false) {
        self.side = side
        self.guests = guests
        self.timeout = timeout
        self.tick = tick
        self.echo = echo
        self.recordHypercalls = recordHypercalls
    }
}

/// How a run went.
public struct XenHostResult: Sendable {
    /// What one domain did.
    public struct Domain: Sendable {
        /// The domain's id.
        public var id: UInt16
        /// The guest's name.
        public var name: String
        /// Console lines: CONSOLEIO_write's and the debug ports' (0xE9, 0x12), in order.
        public var console: [String]
        /// SCHEDOP_shutdown's reason (SHUTDOWN_*), or nil when the domain never shut down.
        public var shutdownReason: UInt8?
        /// Why the host stopped the domain when it did not shut down itself (a triple fault,
        /// an exit KVM could not complete), or nil.
        public var fault: String?
        /// The exits of the domain's vCPUs, by kind.
        public var exits: XenHostExits
        /// Every hypercall, when the configuration asked for them.
        public var hypercalls: [XenHostHypercall]
    }

    /// The side that answered.
    public var side: XenHostConfiguration.Side
    /// Each domain, in id order.
    public var domains: [Domain]
    /// The run reached the configured timeout with a domain still running.
    public var timedOut: Bool
    /// The guests' TSC frequency (Hz): the one the library was given.
    public var tscHz: UInt64

    /// The exit status `xv run` gives: 0 when every domain powered off; 1 when one crashed
    /// or faulted; 3 for a reboot, 4 for a suspend, 5 for a watchdog shutdown; 124 on timeout.
    public var exitStatus: Int32 {
        if timedOut { return 124 }
        var status: Int32 = 0
        for d in domains {
            if d.fault != nil { return 1 }
            switch d.shutdownReason {
            case 0: continue
            case 3, nil: return 1
            case 1: status = max(status, 3)
            case 2: status = max(status, 4)
            case 4: status = max(status, 5)
            default: return 1
            }
        }
        return status
    }
}

/// One hypercall as the guest made it and what it got back.
public struct XenHostHypercall: Sendable, Equatable {
    /// The vCPU that made the call.
    public var vcpu: UInt32
    /// The hypercall number (RAX).
    public var number: UInt64
    /// RDI, RSI, RDX, R10 and R8.
    public var arguments: [UInt64]
    /// What the guest got in RAX.
    public var result: Int64
}

/// The exits of one domain's vCPUs, by kind.
public struct XenHostExits: Sendable {
    /// Hypercalls by number (each one exit through the hypercall port).
    public var hypercalls: [UInt64: Int] = [:]
    /// RDMSR and WRMSR of Xen's MSRs.
    public var msr = 0
    /// Debug-port console bytes.
    public var console = 0
    /// Port I/O nobody serves (reads answered all ones, writes dropped), by port.
    public var unservedPorts: [UInt16: Int] = [:]
    /// Guest accesses KVM had no memory for, completed by the host.
    public var mmio = 0
    /// KVM_RUN returned to let the host stop or flush the vCPU.
    public var interrupted = 0

    /// Every exit counted here.
    public var total: Int {
        hypercalls.values.reduce(0, +) + msr + console + unservedPorts.values.reduce(0, +) + mmio + interrupted
    }

    mutating func add(_ other: XenHostExits) {
        for (k, v) in other.hypercalls { hypercalls[k, default: 0] += v }
        msr += other.msr
        console += other.console
        for (k, v) in other.unservedPorts { unservedPorts[k, default: 0] += v }
        mmio += other.mmio
        interrupted += other.interrupted
    }
}

/// A CPUID feature bit the host can hide from a guest (Intel SDM vol. 2, CPUID).
public struct XenHostCPUFeature: Sendable, Hashable {
    /// The leaf, subleaf, register (0 EAX, 1 EBX, 2 ECX, 3 EDX) and bit.
    public let leaf: UInt32, subleaf: UInt32, register: Int, bit: Int
    /// Its name for `xv run --hide`.
    public let name: String

    /// The features `xv run --hide` knows by name.
    public static let known: [XenHostCPUFeature] = [
        XenHostCPUFeature(leaf: 1, subleaf: 0, register: 2, bit: 13, name: "cx16"),
        XenHostCPUFeature(leaf: 1, subleaf: 0, register: 2, bit: 26, name: "xsave"),
        XenHostCPUFeature(leaf: 1, subleaf: 0, register: 2, bit: 28, name: "avx"),
        XenHostCPUFeature(leaf: 1, subleaf: 0, register: 2, bit: 30, name: "rdrand"),
        XenHostCPUFeature(leaf: 7, subleaf: 0, register: 1, bit: 18, name: "rdseed"),
        XenHostCPUFeature(leaf: 1, subleaf: 0, register: 2, bit: 21, name: "x2apic"),
    ]

    /// The known feature called `name`, or nil.
    public static func named(_ name: String) -> XenHostCPUFeature? { known.first { $0.name == name } }
}
