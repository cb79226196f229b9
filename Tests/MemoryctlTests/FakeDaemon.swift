import Foundation
import MemoryTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A fake memoryd (Python, protobuf encoded by hand) that answers what a healthy sqlite daemon never
/// says: HealthCheck degraded/unhealthy, and GetMemoryItem("err-CODE-TYPE") with any Status. It lets
/// the tests reach every exit code of SPEC §3.
final class FakeDaemon {
    let socketPath: String
    private let directory: String
    private let process: SpawnedProcess

    init(health: String) throws {
        guard let python = findExecutable("python3") else {
            throw Requirement.unavailable("python3 is not installed")
        }
        directory = TestPaths.makeTempDirectory("fake")
        socketPath = directory + "/fake.sock"
        try Self.script.write(toFile: directory + "/fake_memoryd.py", atomically: true, encoding: .utf8)
        process = try SpawnedProcess(
            python, [directory + "/fake_memoryd.py", socketPath, health], environment: [:],
            output: directory + "/log")
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socketPath) {
            guard Date() < deadline, process.wait(timeout: 0) == nil else {
                throw DaemonError(
                    "the fake daemon did not start: \((try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? "")"
                )
            }
            usleep(10_000)
        }
    }

    deinit {
        kill(process.pid, SIGTERM)
        _ = process.wait(timeout: 10)
        try? FileManager.default.removeItem(atPath: directory)
    }

    static let script = #"""
        """A fake memoryd for memoryctl's tests: answers HealthCheck with the status given on the command line
        and GetMemoryItem("err-CODE-TYPE") with that Status, so that every exit code can be provoked.
        Protobuf is encoded by hand (no dependencies). Usage: fake_memoryd.py SOCKET HEALTH_STATUS"""
        import os, socket, struct, sys

        def varint(n):
            out = b""
            while True:
                b = n & 0x7F
                n >>= 7
                if n:
                    out += bytes([b | 0x80])
                else:
                    return out + bytes([b])

        def field(num, wire, payload):
            key = varint(num << 3 | wire)
            if wire == 0:
                return key + varint(payload)
            if wire == 1:
                return key + struct.pack("<d", payload)
            return key + varint(len(payload)) + payload

        def value(v):
            if isinstance(v, str):
                return field(3, 2, v.encode())
            return field(2, 1, float(v))

        def struct_(d):
            return b"".join(field(1, 2, field(1, 2, k.encode()) + field(2, 2, value(v))) for k, v in d.items())

        def parse(buf):
            """{field: [values]} of one message; length-delimited values stay bytes."""
            i, out = 0, {}
            while i < len(buf):
                key, i = read_varint(buf, i)
                num, wire = key >> 3, key & 7
                if wire == 0:
                    v, i = read_varint(buf, i)
                elif wire == 2:
                    n, i = read_varint(buf, i)
                    v, i = buf[i:i + n], i + n
                elif wire == 1:
                    v, i = buf[i:i + 8], i + 8
                else:
                    v, i = buf[i:i + 4], i + 4
                out.setdefault(num, []).append(v)
            return out

        def read_varint(buf, i):
            shift = n = 0
            while True:
                b = buf[i]
                i += 1
                n |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    return n, i

        def response(call_id, code=0, error_type=0, message="", payload=b""):
            status = field(1, 0, code) + field(2, 0, error_type) + field(3, 2, message.encode()) if code else b""
            body = field(1, 0, call_id) + field(2, 2, status) + (field(3, 2, payload) if payload else b"")
            frame = field(2, 2, body)
            return struct.pack(">I", len(frame)) + frame

        def serve(conn, health):
            buf = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while len(buf) >= 4:
                    n = struct.unpack(">I", buf[:4])[0]
                    if len(buf) < 4 + n:
                        break
                    frame, buf = parse(buf[4:4 + n]), buf[4 + n:]
                    if 1 not in frame:
                        continue
                    req = parse(frame[1][0])
                    call_id, method = req[1][0], req[2][0].decode()
                    payload = req.get(5, [b""])[0]
                    if method.endswith("/HealthCheck"):
                        details = {"backend": "firestore", "version": "0.1.0", "uptime_s": 42, "circuit_state": "half_open",
                                   "reason": "circuit breaker half-open after 5 failures", "queue_depth": 0}
                        body = field(1, 2, health.encode()) + field(2, 0, 1) + field(3, 2, struct_(details))
                        conn.sendall(response(call_id, payload=body))
                    elif method.endswith("/GetMemoryItem"):
                        item_id = parse(payload)[1][0].decode()
                        _, code, error_type = item_id.split("-")
                        conn.sendall(response(call_id, int(code), int(error_type), "provoked " + item_id))
                    else:
                        conn.sendall(response(call_id, 12, 0, "fake memoryd has no " + method))

        def main():
            path, health = sys.argv[1], sys.argv[2]
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            s.listen(16)
            while True:
                conn, _ = s.accept()
                with conn:
                    try:
                        serve(conn, health)
                    except (ConnectionError, OSError):
                        pass

        main()
        """#
}
