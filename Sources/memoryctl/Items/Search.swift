import ArgumentParser
import MemoryDomain

struct Search: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find a user's items nearest to an embedding, best first.",
        discussion: """
            Scores: cosine similarity (1 = same direction), dot product, or negative euclidean \
            distance, so that higher is always better. --min-score drops weaker results.

            Example:
              memoryctl search --user alice --embedding-file query.csv --top-k 3 \\
                --min-score 0.8
              memoryctl search --user alice --embedding 0.1,0.2,0.3 --measure dot --json
            """)

    enum Measure: String, ExpressibleByArgument, CaseIterable {
        case cosine, dot, euclidean
        var distance: DistanceMeasure {
            switch self {
            case .cosine: .cosine
            case .dot: .dotProduct
            case .euclidean: .euclidean
            }
        }
    }

    @OptionGroup(title: "Global Options") var globals: GlobalOptions
    @Option(help: "The user (user_id).") var user: String
    @Option(help: ArgumentHelp("The query embedding as comma-separated numbers.", valueName: "csv")) var embedding:
        String?
    @Option(help: ArgumentHelp("A file holding the query embedding.", valueName: "file")) var embeddingFile: String?
    @Option(help: "At most this many results (default 5, max 1000).") var topK: UInt32?
    @Option(help: "Only items said with this persona (persona_active).") var persona: String = ""
    @Option(help: "Only items of this session.") var session: String = ""
    @Option(help: "Drop results scoring below this.") var minScore: Double?
    @Option(help: "cosine, dot or euclidean.") var measure: Measure = .cosine
    @Flag(help: "Do not shorten the text.") var full = false
    @Flag(help: "Include the embeddings (left out unless asked for; they show with --json).") var embeddings = false

    func validate() throws {
        if embedding == nil && embeddingFile == nil {
            throw ValidationError("give the query as --embedding CSV or --embedding-file FILE")
        }
        if embedding != nil && embeddingFile != nil {
            throw ValidationError("give --embedding or --embedding-file, not both")
        }
    }

    func run() throws {
        try globals.run { console in
            let query = try InputParsing.embedding(csv: embedding, file: embeddingFile) ?? []
            let client = try globals.connect()
            defer { client.close() }
            let results = try client.semanticSearch(
                SearchRequest(
                    userID: user, queryEmbedding: query, persona: persona,
                    sessionID: session, topK: topK ?? 0, minScore: minScore,
                    measure: measure.distance, excludeEmbeddings: !embeddings))
            if console.json {
                console.document(
                    .object([
                        "results": .array(
                            results.map {
                                .object(["score": .number($0.score), "item": JSONForms.item($0.item)])
                            })
                    ]))
                return
            }
            if results.isEmpty {
                console.out("no results")
                return
            }
            var table = Table("SCORE", "ID", "TIME", "SESSION", "TEXT")
            for r in results {
                table.add(
                    Self.score(r.score), r.item.id, Format.localTime(r.item.timestamp),
                    r.item.sessionID.isEmpty ? "-" : r.item.sessionID, r.item.textContent)
            }
            console.out(table.render(full: full))
        }
    }

    /// Four decimals: enough to rank by eye.
    static func score(_ s: Double) -> String {
        let scaled = Int((abs(s) * 10_000).rounded())
        return (s < 0 ? "-" : "") + String(scaled).insertingDot(4)
    }
}
