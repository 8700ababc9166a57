import CBenchClock
import Foundation
import XVScenarios

/// Times the blkif ring exchange (`BlkifRingExchange`: a C frontend and backend over
/// libxen-dev's ring.h and blkif.h, between two domains) on both sides in one run: rounds that
/// alternate native and translated, each on a fresh pair of domains, the median round reported
/// as ring requests per second (a write and its read-back are two requests).
struct RingRunner {
    struct Side {
        var requestsPerSecond: Double
        var nsPerRequest: Double
        var verified: Int64
    }

    struct Result {
        var exchanges: Int
        var native: Side
        var translated: Side
    }

    let exchanges: Int
    let rounds: Int

    func measure() -> Result? {
        guard BlkifRingExchange.isAvailable else { return nil }
        var native: [Side] = [], translated: [Side] = []
        for round in 0..<rounds {
            for side in (round % 2 == 0 ? [true, false] : [false, true]) {
                let s = run(native: side)
                if side { native.append(s) } else { translated.append(s) }
            }
        }
        return Result(exchanges: exchanges, native: Self.median(native), translated: Self.median(translated))
    }

    static func median(_ sides: [Side]) -> Side {
        let sorted = sides.sorted { $0.requestsPerSecond < $1.requestsPerSecond }
        return sorted[sorted.count / 2]
    }

    func run(native: Bool) -> Side {
        let ring = BlkifRingExchange(native: native)
        guard ring.setUp() == 0 else { return Side(requestsPerSecond: 0, nsPerRequest: 0, verified: -1) }
        _ = ring.exchange(UInt32(max(exchanges / 10, 1)))
        let start = DispatchTime.now().uptimeNanoseconds
        let verified = ring.exchange(UInt32(exchanges))
        let ns = Double(DispatchTime.now().uptimeNanoseconds - start)
        let requests = Double(2 * exchanges)
        return Side(requestsPerSecond: requests / (ns / 1e9), nsPerRequest: ns / requests, verified: verified)
    }
}
