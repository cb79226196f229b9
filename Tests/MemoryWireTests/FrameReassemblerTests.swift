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
}
