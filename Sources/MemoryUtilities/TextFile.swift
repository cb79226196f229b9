#if canImport(Glibc)
import Glibc
#endif

/// Reads whole files as text: config files, key files, procfs (which reports size 0, so read to the end).
public enum TextFile {
    /// The file's contents, or nil when it cannot be opened (`errno` tells why).
    public static func read(_ path: String) -> String? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n > 0 { out.append(contentsOf: chunk[0..<n]) }
            if n == 0 { break }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
