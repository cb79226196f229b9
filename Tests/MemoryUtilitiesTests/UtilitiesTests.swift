import MemoryUtilities
import XCTest

final class UtilitiesTests: XCTestCase {
    func testJSONRoundTripAndErrors() throws {
        let text = #"{"a":[1,2.5,"x\n\u00e9",true,null],"b":{"c":-3e2},"emoji":"\ud83d\ude00"}"#
        let v = try JSONValue.parse(text)
        XCTAssertEqual(v["a"], .array([.number(1), .number(2.5), .string("x\né"), .bool(true), .null]))
        XCTAssertEqual(v["b"]?["c"], .number(-300))
        XCTAssertEqual(v["emoji"], .string("😀"))
        XCTAssertEqual(try JSONValue.parse(v.serialized()), v)
        XCTAssertThrowsError(try JSONValue.parse("{\"a\":1,}"))
        XCTAssertThrowsError(try JSONValue.parse("[1] x"))
        XCTAssertThrowsError(
            try JSONValue.parse(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)))
    }

    func testTimestampRFC3339() throws {
        let t = try XCTUnwrap(Timestamp(rfc3339: "2026-11-26T09:38:53.152626Z"))
        XCTAssertEqual(t.rfc3339, "2026-11-26T09:38:53.152626Z")
        XCTAssertEqual(Timestamp(rfc3339: "1970-01-01T01:00:00+01:00")?.seconds, 0)
        XCTAssertEqual(Timestamp(rfc3339: "2000-02-29T00:00:00Z")?.seconds, 951_782_400)
        XCTAssertNil(Timestamp(rfc3339: "2026-13-01T00:00:00Z"))
        XCTAssertNil(Timestamp(rfc3339: "yesterday"))
        XCTAssertEqual(Timestamp(microseconds: -1).rfc3339, "1969-12-31T23:59:59.999999Z")
    }

    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256.hexDigest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hexDigest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SHA256.hexDigest(String(repeating: "a", count: 1000)),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    /// Found by fuzz-requests: formatting a timestamp straight off the wire must not trap.
    func testOutOfRangeNanosAreCarriedNotTrapped() {
        XCTAssertEqual(Timestamp(seconds: 1, nanos: -1000).rfc3339, "1970-01-01T00:00:00.999999Z")
        XCTAssertEqual(Timestamp(seconds: 0, nanos: 2_000_001_000).rfc3339, "1970-01-01T00:00:02.000001Z")
        _ = Timestamp(seconds: .max, nanos: .min).description
        _ = Timestamp(seconds: .min, nanos: .max).description
    }
}
