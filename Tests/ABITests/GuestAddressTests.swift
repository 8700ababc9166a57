import GuestABI
import Testing

/// Guest addresses are hostile: arithmetic on them must not wrap or trap.
@Suite struct GuestAddressTests {
    @Test func frameAndOffset() {
        let gpa = GuestPhysicalAddress(0x1234_5678)
        #expect(gpa.frame == GuestFrameNumber(0x12345))
        #expect(gpa.offsetInPage == 0x678)
        #expect(gpa.isAligned(to: 8))
        #expect(!GuestPhysicalAddress(0x1001).isAligned(to: 8))
    }

    @Test func overflowIsRefusedNotWrapped() {
        #expect(GuestPhysicalAddress(UInt64.max - 1).advanced(by: 2) == nil)
        #expect(GuestPhysicalAddress(UInt64.max - 1).advanced(by: 1) == GuestPhysicalAddress(UInt64.max))
        #expect(GuestFrameNumber(UInt64.max).address == nil)
        #expect(GuestFrameNumber(UInt64.max >> 12).address == GuestPhysicalAddress(UInt64.max & ~0xFFF))
    }

    @Test func pageCrossing() {
        #expect(GuestPhysicalAddress(0x1000).rangeStaysInOnePage(length: 4096))
        #expect(!GuestPhysicalAddress(0x1008).rangeStaysInOnePage(length: 4096))
        #expect(!GuestPhysicalAddress(0x1FF8).rangeStaysInOnePage(length: 16))
        #expect(GuestPhysicalAddress(0x1FF8).rangeStaysInOnePage(length: 8))
        #expect(GuestPhysicalAddress(UInt64.max).rangeStaysInOnePage(length: 0))
        #expect(!GuestPhysicalAddress(0).rangeStaysInOnePage(length: UInt64.max))
    }

    @Test func abiFieldElements() {
        let f = ABIField(offset: 2048, size: 512, count: 64)
        #expect(f.elementSize == 8)
        #expect(f.offset(ofElement: 63) == 2048 + 504)
        #expect(f.end == 2560)
    }
}
