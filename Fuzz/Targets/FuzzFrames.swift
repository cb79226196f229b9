// libFuzzer target: frame reassembly and Frame decoding from an arbitrary byte stream.
//
// The first input byte picks how the stream is cut into reads (as the kernel would) and the frame size
// limit; the rest is the stream. Oracles besides "no crash, no ASan report":
//   - the frames (and the failure) do not depend on how the stream was cut;
//   - a decoded frame re-encodes to bytes that decode to the same frame.
import MemoryWire

private struct Outcome: Equatable {
    var frames: [[UInt8]] = []
    var failure: FrameReassembler.Failure?
}

private func reassemble(_ stream: UnsafeRawBufferPointer, chunk: Int, maxFrameBytes: Int) -> Outcome {
    var r = FrameReassembler(maxFrameBytes: maxFrameBytes)
    var out = Outcome()
    var i = 0
    while i < stream.count {
        let end = min(stream.count, i + chunk)
        var part = UnsafeRawBufferPointer(rebasing: stream[i..<end])
        // Stop-and-resume as the server does at its in-flight limit: stop after every frame, feed the rest.
        while !part.isEmpty {
            do {
                let used = try r.feed(part) { body in
                    out.frames.append(Array(body))
                    return out.frames.count % 3 != 0
                }
                part = UnsafeRawBufferPointer(rebasing: part[used...])
            } catch let f as FrameReassembler.Failure {
                out.failure = f
                return out
            } catch {
                fatalError("feed threw \(error)")
            }
        }
        i = end
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    let control = Int(data[0])
    let stream = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let chunk = [1, 2, 3, 4, 5, 7, 16, 64, 4096, 1 << 20][control % 10]
    let maxFrameBytes = control & 0x80 != 0 ? 64 : 4 * 1024 * 1024

    let whole = reassemble(stream, chunk: Int.max / 2, maxFrameBytes: maxFrameBytes)
    let cut = reassemble(stream, chunk: chunk, maxFrameBytes: maxFrameBytes)
    check(whole == cut, "reassembly depends on how the stream is cut (chunk \(chunk))")

    for body in whole.frames {
        guard var frame = try? FrameCodec.decode(body) else { continue }
        // A Response carries a payload only when it succeeded (SPEC §2); the encoder drops it otherwise.
        if case .response(var r) = frame, r.error != nil {
            r.payload = []
            frame = .response(r)
        }
        let again = FrameCodec.encode(frame)
        check(again.count >= 4)
        let n = Int(UInt32(again[0]) << 24 | UInt32(again[1]) << 16 | UInt32(again[2]) << 8 | UInt32(again[3]))
        check(n == again.count - 4, "length prefix \(n) does not match the body (\(again.count - 4))")
        if n == 0 { continue }  // an empty Request/GoAway can encode to nothing; the reader refuses length 0
        let decoded = try? FrameCodec.decode(Array(again[4...]))
        check(decoded == frame, "re-encoded frame decodes differently: \(frame) vs \(String(describing: decoded))")
    }
    return 0
}
