import MemoryDomain

extension SQLiteConnection {
    func semanticSearch(_ query: SearchQuery, context: CallContext) throws(MemoryError) -> [ScoredItem] {
        guard query.embedding.count == backend.limits.embeddingDimension else {
            throw .validation(
                "query_embedding has \(query.embedding.count) values; expected \(backend.limits.embeddingDimension)")
        }
        let vectors = try backend.vectors(for: query.userID) { () throws(MemoryError) -> UserVectors in
            try loadVectors(userID: query.userID)
        }
        let now = context.now.microseconds
        let hits = vectors.search(
            query.embedding, measure: query.measure, topK: query.topK,
            persona: query.persona, session: query.sessionID, now: now)
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

    /// Reads all of a user's embeddings (expired ones too: whether they count depends on each call's `now`).
    private func loadVectors(userID: String) throws(MemoryError) -> UserVectors {
        let vectors = UserVectors(dimension: backend.limits.embeddingDimension)
        var skipped = 0
        try db.withStatement(
            "load_vectors",
            """
            SELECT id, session_id, persona_active, expiration, embedding FROM memory_items
            WHERE user_id = ?1 AND embedding IS NOT NULL
            """
        ) { s throws(MemoryError) in
            try s.bind(1, userID)
            var embedding: [Float] = []
            while try s.step() {
                embedding.removeAll(keepingCapacity: true)
                guard EmbeddingCodec.decode(s.blob(4), into: &embedding), embedding.count == vectors.dimension else {
                    skipped += 1
                    continue
                }
                vectors.put(
                    IndexedVector(
                        id: s.string(0), userID: userID, persona: s.string(2), session: s.string(1),
                        expiration: s.optionalInt64(3), embedding: embedding))
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
