#if canImport(Glibc)
import Glibc
#endif

/// Reads a file (or stdin for `-`) line by line, without a limit on a line's length.
final class LineReader {
    private let file: UnsafeMutablePointer<FILE>
    private var buffer: UnsafeMutablePointer<CChar>?
    private var capacity = 0
    /// The number of the line `next()` returned last (1-based).
    private(set) var lineNumber = 0

    init?(path: String) {
        // stdin is duplicated so that closing the reader leaves fd 0 alone.
        guard let f = path == "-" ? fdopen(dup(0), "r") : fopen(path, "r") else { return nil }
        file = f
    }

    deinit {
        free(buffer)
        fclose(file)
    }

    /// The next line without its newline, or nil at the end.
    func next() -> String? {
        let n = getline(&buffer, &capacity, file)
        guard n >= 0, let buffer else { return nil }
        lineNumber += 1
        var count = n
        if count > 0 && buffer[count - 1] == 0x0A { count -= 1 }
        if count > 0 && buffer[count - 1] == 0x0D { count -= 1 }
        return UnsafeRawBufferPointer(start: buffer, count: count).withMemoryRebound(to: UInt8.self) {
            String(decoding: $0, as: UTF8.self)
        }
    }
}
