extension String {
    /// The string without leading and trailing `c`s (Foundation's `trimmingCharacters(in:)` without Foundation).
    public func trimming(_ c: Character) -> String {
        var s = Substring(self)
        while s.first == c { s.removeFirst() }
        while s.last == c { s.removeLast() }
        return String(s)
    }
}
