import CGuestAtomics
import GuestABI
import XenABI

/// Where a domain's console lines go: the embedder's log, serial port or test recorder. Called
/// on the writing vCPU's thread with no lock of the layer held; `line` is valid for the call
/// only and holds no newline.
public protocol XenConsoleSink: AnyObject {
    /// One complete line `domain` wrote through CONSOLEIO_write (without its newline). Called on the writing vCPU's thread; `line` is borrowed for the call only.
    func consoleLine(domain: DomainID, _ line: UnsafeRawBufferPointer)
}

/// __HYPERVISOR_console_io for a domU (xen-project/xen xen/drivers/char/console.c do_console_io
/// and guest_console_write; xen/include/xsm/dummy.h xsm_console_io). A domain with a console
/// sink attached is what Xen calls a console domain (d->is_console); without one every sub-op
/// is -EPERM, as the default XSM policy answers a release build's domU.
///
/// CONSOLEIO_write reads the guest's bytes 127 at a time (-EFAULT at the first that is not
/// backed; what came before has been taken), keeps the printable ones and tabs, and passes a
/// line on at each newline or once the domain's 200-byte line buffer would overflow, as Xen's
/// per-domain buffer does. Xen preempts a long write with a continuation; the layer finishes it
/// in one call, which the guest's own memory bounds (the read faults where its RAM ends).
extension XenDomain {
    /// `cmd` and `count` are Xen's `unsigned int` arguments (RDI, RSI); `buffer` the guest's
    /// pointer (RDX).
    @inline(never)
    @inlinable public func consoleIO(_ cmd: UInt64, count: UInt64, buffer: UInt64) -> Int64 {
        guard let sink = consoleSink else { return XenErrno.eperm.hypercallReturnValue }
        let op = ConsoleIOOp(rawValue: UInt32(truncatingIfNeeded: cmd))
        if case .rejected(let errno) = op.disposition { return errno.hypercallReturnValue }
        let n = UInt32(truncatingIfNeeded: count)
        switch op {
        case .write:
            return consoleWrite(n, from: buffer, to: sink)
        case .read:
            // No input is ever buffered for the guest: nothing to read. Counts that could not be
            // told from an errno in the return value are -E2BIG first, as in Xen.
            return n > UInt32(Int32.max) ? XenErrno.e2big.hypercallReturnValue : 0
        default:
            return XenErrno.enosys.hypercallReturnValue
        }
    }

    @inlinable func consoleWrite(_ count: UInt32, from buffer: UInt64, to sink: any XenConsoleSink) -> Int64 {
        let chunk = Int(ConsoleIOLimits.chunk), lineSize = Int(ConsoleIOLimits.lineBuffer)
        var remaining = Int(count)
        var address = buffer
        return withUnsafeTemporaryAllocation(byteCount: chunk + lineSize + chunk, alignment: 8) { scratch in
            let kbuf = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<chunk])
            let line = UnsafeMutableRawBufferPointer(rebasing: scratch[chunk...])
            while remaining > 0 {
                let k = min(remaining, chunk)
                guard memory.read(at: GuestPhysicalAddress(address), into: UnsafeMutableRawBufferPointer(rebasing: kbuf[0..<k])) else {
                    return XenErrno.efault.hypercallReturnValue
                }
                // Keep what is printable (C isprint, where a byte of 0x80 and up is a negative
                // char, so not printable) and tabs, up to and including a newline.
                var consumed = 0, kept = 0
                var last: UInt8 = 0
                while consumed < k {
                    last = kbuf[consumed]
                    consumed += 1
                    if last == 0x0A { break }
                    if (last >= 0x20 && last < 0x7F) || last == 0x09 { kbuf[kept] = last; kept += 1 }
                }
                if let length = bufferLine(UnsafeRawBufferPointer(rebasing: kbuf[0..<kept]), newline: last == 0x0A, into: line) {
                    sink.consoleLine(domain: id, UnsafeRawBufferPointer(rebasing: line[0..<length]))
                }
                address &+= UInt64(consumed)
                remaining -= consumed
            }
            return 0
        }
    }

    /// Adds `kept` to the domain's line buffer, under its lock. When the line is complete (a
    /// newline, or no room left for `kept` and a NUL), copies the buffered bytes and `kept`
    /// into `line`, empties the buffer and returns the length.
    @inlinable func bufferLine(_ kept: UnsafeRawBufferPointer, newline: Bool, into line: UnsafeMutableRawBufferPointer) -> Int? {
        let lock = words + DomainWords.consoleLock
        let fillWord = words + DomainWords.consoleFill
        let stored = words + DomainWords.consoleBuffer
        xv_spin_lock(lock)
        defer { xv_spin_unlock(lock) }
        let fill = Int(fillWord.load(as: UInt32.self))
        if !newline && fill + kept.count < Int(ConsoleIOLimits.lineBuffer) - 1 {
            (stored + fill).copyMemory(from: kept.baseAddress!, byteCount: kept.count)
            fillWord.storeBytes(of: UInt32(fill + kept.count), as: UInt32.self)
            return nil
        }
        line.baseAddress!.copyMemory(from: stored, byteCount: fill)
        // A whole chunk beside a nearly full buffer is longer than the buffer: Xen prints both,
        // and `line` has room for both.
        (line.baseAddress! + fill).copyMemory(from: kept.baseAddress!, byteCount: kept.count)
        fillWord.storeBytes(of: 0, as: UInt32.self)
        return fill + kept.count
    }
}
