// The methods the server routes, by their wire names (docs/protocol.md, "Methods").

enum Method: String, CaseIterable {
    case recommend = "/r2ec.v1.Recommender/Recommend"
    case recommendStream = "/r2ec.v1.Recommender/RecommendStream"
    case recommendBatch = "/r2ec.v1.Recommender/RecommendBatch"
    case scoreItems = "/r2ec.v1.Recommender/ScoreItems"
    case similarItems = "/r2ec.v1.Recommender/SimilarItems"
    case getItems = "/r2ec.v1.Recommender/GetItems"
    case modelInfo = "/r2ec.v1.Recommender/ModelInfo"
    case healthCheck = "/r2ec.v1.Health/Check"
    case healthWatch = "/r2ec.v1.Health/Watch"
    case loadModel = "/r2ec.v1.Admin/LoadModel"
    case unloadModel = "/r2ec.v1.Admin/UnloadModel"

    var isAdmin: Bool { self == .loadModel || self == .unloadModel }

    /// The services Health knows about ("" is the server as a whole).
    static let healthServices: Set<String> = ["", "r2ec.v1.Recommender", "r2ec.v1.Health"]
}
