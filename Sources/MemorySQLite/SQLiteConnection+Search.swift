import MemoryDomain
import MemoryUtilities

#if canImport(Glibc)
import Glibc
#endif

extension SQLiteConnection {
    func semanticSearch(_ query: SearchQuery, context: CallContext) throws(MemoryError) -> [ScoredItem] {
        guard query.embedding.count == backend.limits.embeddingDimension else {
            throw .validation(
                "query_embedding has \(query.embedding.count) values; expected \(backend.limits.embeddingDimension)")
        }
        return try db.withDeadline(context.deadline) { () throws(MemoryError) -> [ScoredItem] in
            let now = context.now.microseconds
            let hits = try nearest(query, now: now, deadline: context.deadline)
            var results: [ScoredItem] = []
            results.reserveCapacity(hits.count)
            for hit in hits {
                // Dropping after the top-k is the same as filtering first: min_score only removes the worst.
                if let minScore = query.minScore, hit.score < minScore { continue }
                // Deleted since the scan (a writer won the race): skip it rather than fail the search.
                guard let item = try fetchItem(id: hit.id, now: now, embedding: !query.excludeEmbeddings),
                    item.userID == query.userID
                else { continue }
                results.append(ScoredItem(item: item, score: hit.score))
            }
            return results
        }
    }

    /// The exact top-k ids and scores: from the index, loading the user first if needed, or by streaming
    /// from the database when the user alone does not fit the index's budget.
    private func nearest(_ query: SearchQuery, now: Int64, deadline: Deadline) throws(MemoryError) -> [(
        id: String, score: Double
    )] {
        let index = backend.index
        let vectors: UserVectors
        switch try index.acquire(query.userID, deadline: deadline) {
        case .loaded(let loaded):
            vectors = loaded
        case .load(let loading):
            do throws(MemoryError) {
                let rows = try countItems(userID: query.userID)
                guard index.fits(rows: rows) else {
                    index.abandonLoad(query.userID, loading)
                    index.countStreamedSearch()
                    return try streamNearest(query, now: now)
                }
                index.makeRoom(
                    for: UserVectors.estimatedBytes(rows: rows, dimension: index.dimension), keeping: query.userID)
                vectors = try loadVectors(userID: query.userID, reservingRows: rows)
            } catch {
                index.abandonLoad(query.userID, loading)
                throw error
            }
            index.finishLoad(query.userID, loading, vectors)
        }
        return vectors.search(
            query.embedding, measure: query.measure, topK: query.topK, persona: query.persona,
            session: query.sessionID, now: now)
    }

    /// The user's rows, from the history index alone (an upper bound of their embeddings: items without one
    /// count too). Sizes a load before it reads anything.
    private func countItems(userID: String) throws(MemoryError) -> Int {
        try db.withStatement("count_user_items", "SELECT count(*) FROM memory_items WHERE user_id = ?1") {
            s throws(MemoryError) -> Int in
            try s.bind(1, userID)
            return try s.step() ? Int(s.int64(0)) : 0
        }
    }

    /// Reads all of a user's embeddings (expired ones too: whether they count depends on each call's `now`)
    /// into vectors sized from `reservingRows` up front. Rows are read in rowid order (the user's rowids from
    /// an index, sorted, then the rows): the file is read forward instead of jumping between pages, 2x faster
    /// for 1,000,000 rows not all in the page cache. Runs without any lock writers need: the index
    /// records what they commit meanwhile and replays it (``EmbeddingIndex``).
    private func loadVectors(userID: String, reservingRows: Int) throws(MemoryError) -> UserVectors {
        let dimension = backend.limits.embeddingDimension
        let vectors = UserVectors(dimension: dimension, reservingRows: reservingRows, kernels: backend.index.kernels)
        let progress = backend.index.loadProgress
        var skipped = 0
        var loaded = 0
        try db.withStatement(
            "load_vectors",
            """
            SELECT id, session_id, persona_active, expiration, embedding FROM memory_items
            WHERE rowid IN (SELECT rowid FROM memory_items WHERE user_id = ?1) AND embedding IS NOT NULL
            """
        ) { s throws(MemoryError) in
            try s.bind(1, userID)
            var embedding = [Float](repeating: 0, count: dimension)
            while try s.step() {
                let blob = s.blob(4)
                guard blob.count == dimension * 4 else {
                    skipped += 1
                    continue
                }
                embedding.withUnsafeMutableBufferPointer { e in EmbeddingCodec.decode(blob, into: e.baseAddress!) }
                embedding.withUnsafeBufferPointer { e in
                    vectors.put(
                        id: s.string(0), persona: s.string(2), session: s.string(1), expiration: s.optionalInt64(3),
                        embedding: e.baseAddress!)
                }
                loaded += 1
                if loaded % EmbeddingIndex.loadChunkRows == 0 { progress?(userID, loaded) }
            }
        }
        if skipped > 0 {
            backend.logger.warning(
                "sqlite: embeddings of the wrong size left out of the search index",
                metadata: ["user_id": "\(userID)", "count": "\(skipped)"])
        }
        backend.logger.debug(
            "sqlite: loaded search index", metadata: ["user_id": "\(userID)", "vectors": "\(vectors.count)"])
        return vectors
    }
}

extension EmbeddingCodec {
    /// Decodes exactly `bytes.count / 4` floats to `out` (the caller checked the count).
    static func decode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        #if _endian(little)
        if let base = bytes.baseAddress { memcpy(out, base, bytes.count) }
        #else
        for i in 0..<bytes.count / 4 {
            out[i] = Float(
                bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
        }
        #endif
    }
}
