// `r2ec bench serve --requests FILE`: a JSONL file of Recommend requests to replay, one object per line:
// {"user_id": "196", "top_k": 10, "mode": "direct", "model": "wals"} or {"history": ["50", 172], "mode": "reasoning",
// "max_reasoning_tokens": 32}. Ids may be strings or integers; every key but one of user_id/history is optional.
// An unknown key, a wrong type or a line that is not an object stops the bench, naming the line and key.
import Foundation
import RPC

struct ReplayRequest: Equatable {
    var userId = ""
    var history: [String] = []
    var topK = 0
    var reasoning = false
    var maxReasoningTokens = 0
    var model = ""

    /// The request's RecommendRequest bytes; `defaultModel` names the model when the line names none.
    func encoded(defaultModel: String) -> [UInt8] {
        RequestEncoding.recommend(itemIds: history, userId: userId, topK: topK, reasoning: reasoning,
                                  maxReasoningTokens: maxReasoningTokens, model: model.isEmpty ? defaultModel : model)
    }

    /// "model=wals mode=direct by=user_id top_k=10": what the mix of a file counts.
    var kind: String {
        "model=\(model.isEmpty ? "(default)" : model) mode=\(reasoning ? "reasoning" : "direct") "
            + "by=\(userId.isEmpty ? "history" : history.isEmpty ? "user_id" : "user_id+history") top_k=\(topK)"
    }
}

enum RequestFile {
    struct Error: Swift.Error, CustomStringConvertible {
        let description: String
    }

    static let keys: Set<String> = ["user_id", "history", "top_k", "mode", "model", "max_reasoning_tokens"]

    static func read(_ path: String) throws -> [ReplayRequest] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Error(description: "--requests: cannot read '\(path)'")
        }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    static func parse(_ text: String, path: String) throws -> [ReplayRequest] {
        var requests: [ReplayRequest] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { continue }
            let place = "\(path):\(index + 1)"
            guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
                throw Error(description: "\(place): not a JSON object")
            }
            requests.append(try request(object, place: place))
        }
        guard !requests.isEmpty else { throw Error(description: "\(path): no requests") }
        return requests
    }

    /// One line as JSON types: ids as strings or integers, counts as integers (a boolean is neither).
    private struct Line: Decodable {
        struct Id: Decodable {
            let text: String
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let s = try? c.decode(String.self) { text = s } else { text = String(try c.decode(Int64.self)) }
            }
        }
        var user_id: Id?
        var history: [Id]?
        var top_k: Int?
        var mode: String?
        var model: String?
        var max_reasoning_tokens: Int?
    }

    static func request(_ object: [String: Any], place: String) throws -> ReplayRequest {
        if let unknown = object.keys.sorted().first(where: { !keys.contains($0) }) {
            throw Error(description: "\(place): unknown key '\(unknown)' (keys: \(keys.sorted().joined(separator: ", ")))")
        }
        let line: Line
        do {
            line = try JSONDecoder().decode(Line.self, from: JSONSerialization.data(withJSONObject: object))
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.dataCorrupted(context),
                let DecodingError.valueNotFound(_, context) {
            let key = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined()
            throw Error(description: "\(place): '\(key)' has the wrong type (ids: strings or integers; top_k and "
                + "max_reasoning_tokens: whole numbers; mode and model: strings)")
        }
        var r = ReplayRequest()
        r.userId = line.user_id?.text ?? ""
        r.history = line.history?.map(\.text) ?? []
        guard !r.userId.isEmpty || !r.history.isEmpty else {
            throw Error(description: "\(place): needs 'user_id' or a non-empty 'history'")
        }
        if r.history.contains("") { throw Error(description: "\(place): 'history' holds an empty item id") }
        for (key, value) in [("top_k", line.top_k), ("max_reasoning_tokens", line.max_reasoning_tokens)] {
            if let value, !(0...Int(UInt32.max)).contains(value) {
                throw Error(description: "\(place): '\(key)' must be from 0 to \(UInt32.max), got \(value)")
            }
        }
        r.topK = line.top_k ?? 0
        r.maxReasoningTokens = line.max_reasoning_tokens ?? 0
        switch line.mode {
        case nil, "direct": r.reasoning = false
        case "reasoning": r.reasoning = true
        default: throw Error(description: "\(place): 'mode' must be \"direct\" or \"reasoning\"")
        }
        r.model = line.model ?? ""
        return r
    }
}
