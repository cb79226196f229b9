import MemoryDomain

extension SQLiteConnection {
    /// Exact top-k of a user who does not fit the index: reads their embeddings from the database in chunks of
    /// ``UserVectors/rowsPerBlock`` rows into one reused block, scores each chunk with the index's kernels and
    /// keeps a top-k heap, so memory stays at one block whatever the user's size. Filters are applied in SQL.
    /// Rows come in rowid order, as for a load. Each step is bounded by the call's deadline (the connection's
    /// progress handler).
    func streamNearest(_ query: SearchQuery, now: Int64) throws(MemoryError) -> [(id: String, score: Double)] {
        let dimension = backend.limits.embeddingDimension
        let stride = (dimension + 15) / 16 * 16
        let chunkRows = UserVectors.rowsPerBlock
        let kernels = backend.index.kernels
        let prepared = PreparedQuery(query.embedding, stride: stride, measure: query.measure)
        let chunk = UnsafeMutablePointer<Float>.allocate(capacity: chunkRows * stride)
        chunk.initialize(repeating: 0, count: chunkRows * stride)
        defer { chunk.deallocate() }
        var raw = [Float](repeating: 0, count: chunkRows)
        var inverseNorms = [Float](repeating: 0, count: chunkRows)
        var chunkIDs: [String] = []
        chunkIDs.reserveCapacity(chunkRows)
        var heap = TopK(capacity: query.topK)
        // The rows in the heap, by their number in the stream: id and embedding, for the exact final scores.
        var candidates: [Int: (id: String, embedding: [Float])] = [:]
        var first = 0

        func scoreChunk() {
            let n = chunkIDs.count
            guard n > 0 else { return }
            raw.withUnsafeMutableBufferPointer { out in
                prepared.padded.withUnsafeBufferPointer { q in
                    kernels.raw(
                        chunk, count: n, stride: stride, query: q.baseAddress!, measure: query.measure,
                        into: out.baseAddress!)
                }
                for i in 0..<n {
                    let score = prepared.rank(out[i], inverseRowNorm: inverseNorms[i])
                    if score > heap.threshold { heap.offer(score: score, row: first + i) }
                }
            }
            for row in heap.rows where row >= first && candidates[row] == nil {
                let r = chunk + (row - first) * stride
                candidates[row] = (chunkIDs[row - first], Array(UnsafeBufferPointer(start: r, count: dimension)))
            }
            if candidates.count > 4 * query.topK + 64 {
                let keep = Set(heap.rows)
                candidates = candidates.filter { keep.contains($0.key) }
            }
            first += n
            chunkIDs.removeAll(keepingCapacity: true)
        }

        try db.withStatement(
            "stream_vectors",
            """
            SELECT id, embedding FROM memory_items
            WHERE rowid IN (SELECT rowid FROM memory_items WHERE user_id = ?1)
              AND embedding IS NOT NULL AND (expiration IS NULL OR expiration > ?2)
              AND (?3 = '' OR persona_active = ?3) AND (?4 = '' OR session_id = ?4)
            """
        ) { s throws(MemoryError) in
            try s.bind(1, query.userID)
            try s.bind(2, now)
            try s.bind(3, query.persona)
            try s.bind(4, query.sessionID)
            while try s.step() {
                let blob = s.blob(1)
                guard blob.count == dimension * 4 else { continue }
                let r = chunk + chunkIDs.count * stride
                EmbeddingCodec.decode(blob, into: r)
                inverseNorms[chunkIDs.count] = inverseNorm(r, count: dimension)
                chunkIDs.append(s.string(0))
                if chunkIDs.count == chunkRows { scoreChunk() }
            }
        }
        scoreChunk()
        var results: [(id: String, score: Double)] = heap.rows.compactMap { row in
            guard let c = candidates[row] else { return nil }
            return (c.id, Scoring.score(c.embedding, query.embedding, measure: query.measure))
        }
        results.sort { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }
        return results
    }
}
