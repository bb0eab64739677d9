// Loading and saving a Tokenizer as Hugging Face tokenizer.json (model.type "BPE", byte-level pre-tokeniser and
// decoder, merges as "a b" strings or [a, b] pairs, added_tokens with their special flags).
import Foundation

extension Tokenizer {
    public convenience init(huggingFaceJSON json: Foundation.Data) throws {
        guard let top = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw CheckpointError.invalidTokenizer("tokenizer.json is not a JSON object")
        }
        guard let model = top["model"] as? [String: Any] else {
            throw CheckpointError.invalidTokenizer("tokenizer.json has no \"model\"")
        }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw CheckpointError.invalidTokenizer("model.type is \(type), only BPE is read") }
        guard let vocab = model["vocab"] as? [String: Any] else {
            throw CheckpointError.invalidTokenizer("model.vocab is missing")
        }
        // Ids are checked before they index anything: non-negative integers, below the entry count plus a margin
        // for holes (a runaway id would allocate the whole range), and one content per id.
        let limit = vocab.count + ((top["added_tokens"] as? [Any])?.count ?? 0) + 65_536
        func tokenId(_ value: Any?, _ what: String) throws -> Int {
            guard let n = value as? NSNumber, let id = Int(exactly: n.doubleValue), id >= 0, id < limit else {
                throw CheckpointError.invalidTokenizer("\(what) has no integer id in 0..<\(limit)")
            }
            return id
        }
        var pairs: [(String, Int)] = []
        for (token, value) in vocab { pairs.append((token, try tokenId(value, "vocab entry \(token)"))) }
        var added: [AddedToken] = []
        for entry in top["added_tokens"] as? [[String: Any]] ?? [] {
            guard let content = entry["content"] as? String, entry["id"] != nil else {
                throw CheckpointError.invalidTokenizer("an added_tokens entry lacks content or id")
            }
            added.append(AddedToken(content: content, id: try tokenId(entry["id"], "added token \(content)"),
                                    special: entry["special"] as? Bool ?? true))
        }
        let size = max((pairs.map(\.1).max() ?? -1), (added.map(\.id).max() ?? -1)) + 1
        var tokens = [String?](repeating: nil, count: size)
        for (t, id) in pairs {
            if let other = tokens[id] { throw CheckpointError.invalidTokenizer("id \(id) is both \(other) and \(t) in model.vocab") }
            tokens[id] = t
        }
        // An added token may repeat its vocab entry (same id, same content), never take another's id.
        var addedContent: [Int: String] = [:]
        for a in added {
            if let other = addedContent[a.id] ?? tokens[a.id], other != a.content {
                throw CheckpointError.invalidTokenizer("id \(a.id) is both \(other) and the added token \(a.content)")
            }
            addedContent[a.id] = a.content
            tokens[a.id] = a.content
        }
        var merges: [(String, String)] = []
        for m in model["merges"] as? [Any] ?? [] {
            if let s = m as? String {
                let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw CheckpointError.invalidTokenizer("merge \"\(s)\" is not \"a b\"") }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let p = m as? [String], p.count == 2 {
                merges.append((p[0], p[1]))
            } else {
                throw CheckpointError.invalidTokenizer("a merge is neither \"a b\" nor [a, b]")
            }
        }
        try self.init(tokens: tokens.map { $0 ?? "" }, merges: merges, addedTokens: added)
    }

    public convenience init(contentsOf path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw CheckpointError.missingFile(path) }
        try self.init(huggingFaceJSON: try Foundation.Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// tokenizer.json in Hugging Face's layout (keys sorted so that equal tokenizers write equal bytes).
    public func huggingFaceJSON() throws -> Foundation.Data {
        let addedIds = Set(addedTokens.map(\.id))
        var vocab: [String: Int] = [:]
        for (id, t) in tokens.enumerated() where !addedIds.contains(id) && !t.isEmpty { vocab[t] = id }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                                        "use_regex": true]
        let top: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(),
            "padding": NSNull(),
            "added_tokens": addedTokens.map {
                ["id": $0.id, "content": $0.content, "single_word": false, "lstrip": false, "rstrip": false,
                 "normalized": false, "special": $0.special] as [String: Any]
            },
            "normalizer": NSNull(),
            "pre_tokenizer": byteLevel,
            "post_processor": byteLevel,
            "decoder": byteLevel,
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false,
                "vocab": vocab, "merges": merges.map { "\($0.0) \($0.1)" },
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: top, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    public func save(to path: String) throws {
        try huggingFaceJSON().write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
