import MemoryWire
import XCTest

final class FrameReassemblerTests: XCTestCase {
    private func frames(_ chunks: [[UInt8]], max: Int = 100) throws -> [[UInt8]] {
        var r = FrameReassembler(maxFrameBytes: max)
        var out: [[UInt8]] = []
        for c in chunks {
            try c.withUnsafeBytes {
                _ = try r.feed($0) {
                    out.append(Array($0))
                    return true
                }
            }
        }
        return out
    }

    func testWholeSplitAndByteByByteFramesAreReassembled() throws {
        let stream: [UInt8] = [0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 1, 9]
        XCTAssertEqual(try frames([stream]), [[1, 2, 3], [9]])
        XCTAssertEqual(try frames(stream.map { [$0] }), [[1, 2, 3], [9]])
        XCTAssertEqual(
            try frames([Array(stream[0..<2]), Array(stream[2..<6]), Array(stream[6...])]), [[1, 2, 3], [9]])
    }

    func testBadLengthsAreRefusedBeforeAllocation() {
        XCTAssertThrowsError(try frames([[0, 0, 0, 0]])) {
            XCTAssertEqual($0 as? FrameReassembler.Failure, .zeroLength)
        }
        XCTAssertThrowsError(try frames([[0, 0, 0, 101]])) {
            XCTAssertEqual($0 as? FrameReassembler.Failure, .tooLarge(101))
        }
        XCTAssertThrowsError(try frames([[0xff], [0xff, 0xff], [0xff]])) {
            XCTAssertEqual($0 as? FrameReassembler.Failure, .tooLarge(UInt32.max))
        }
    }

    func testStoppingAfterAFrameReportsTheBytesConsumed() throws {
        var r = FrameReassembler(maxFrameBytes: 100)
        let stream: [UInt8] = [0, 0, 0, 1, 7, 0, 0, 0, 1, 8]
        let consumed = try stream.withUnsafeBytes { try r.feed($0) { _ in false } }
        XCTAssertEqual(consumed, 5)
        XCTAssertFalse(r.isMidFrame)
    }

    func testALargeFrameThatSpannedReadsLeavesNoLargeBufferBehind() throws {
        for size in [520_000, 1 << 20, (1 << 20) + 1, 3_000_000] {
            var r = FrameReassembler(maxFrameBytes: 4 << 20)
            let stream = LengthPrefix.bytes(size) + [UInt8](repeating: 7, count: size)
            var got = 0
            for start in stride(from: 0, to: stream.count, by: 65536) {  // the server's 64 KiB reads
                try stream[start..<min(stream.count, start + 65536)].withUnsafeBytes {
                    _ = try r.feed($0) {
                        got = $0.count
                        return true
                    }
                }
            }
            XCTAssertEqual(got, size)
            XCTAssertFalse(r.isMidFrame)
            XCTAssertLessThanOrEqual(r.bufferedCapacity, FrameReassembler.keptBufferBytes, "after a \(size)-byte frame")
        }
    }
}
