import Data
import Foundation
import XCTest
@testable import Eval

final class ReportTests: XCTestCase {
    func toy() -> Dataset {
        var xs: [Interaction] = []
        for u in 0..<6 { for p in 0..<5 { xs.append(Interaction(user: u, item: (u + p) % 7, rating: 4, timestamp: Int64(p))) } }
        return Dataset(name: "toy", catalog: Catalog(items: (0..<7).map { Item(id: String($0)) }),
                       userIds: (0..<6).map(String.init), interactions: xs)
    }

    func testJSONReportHasMetricsKeyedByName() throws {
        let d = toy()
        let split = Splits.leaveOneOut(d)
        let model = try Baselines.train(kind: "wals", on: split.train, catalog: d.catalog, numUsers: d.numUsers,
                                        options: ["factors": "2"])
        let v = try Evaluator.evaluate(model, on: split.validation)
        let t = try Evaluator.evaluate(model, on: split.test, calibrator: TopNCalibrator.fit(v.topN, n: 10))
        let report = EvalReport(command: "r2ec eval", dataset: d, split: split, model: model, validation: v, test: t,
                                sweep: [], fitSeconds: 0.01, wallSeconds: 0.1)
        let o = try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as! [String: Any]
        let metrics = o["metrics"] as! [String: Double]
        XCTAssertEqual(Set(metrics.keys), Set(Metrics.names()))
        XCTAssertEqual(metrics["NDCG@10"]!, t.metrics["NDCG@10"]!)
        XCTAssertEqual((o["intervals"] as! [String: [Double]])["NDCG@10"]!.count, 2)
        XCTAssertEqual((o["dataset"] as! [String: Any])["fingerprint"] as? String, d.fingerprint)
        XCTAssertEqual((o["split"] as! [String: Any])["test_samples"] as? Int, 6)
        XCTAssertEqual(((o["model"] as! [String: Any])["config"] as! [String: Any])["factors"] as? Int, 2)
        XCTAssertNotNil(o["ece@10"])
        let md = report.markdown()
        XCTAssertTrue(md.contains("| HR@5 | HR@10 | HR@20 | NDCG@5 | NDCG@10 | NDCG@20 | MRR |"))
        XCTAssertTrue(md.contains("| **test** |"))
        XCTAssertEqual(EvalReport.f4(0.04494), ".0449")
        XCTAssertEqual(EvalReport.f4(1), "1.0000")
        XCTAssertEqual(EvalReport.f4(0.00005), ".0001")
    }

    func testModelSoftmaxECE() throws {
        // Logits log(0.7), log(0.2), log(0.1): the target (item 0) gets p = 0.7 in bin 7, the others 0.2 and 0.1.
        let model = FixedScores([Float(log(0.7)), Float(log(0.2)), Float(log(0.1))])
        var o = EvalOptions()
        o.scoresAreLogits = true
        o.bootstrapResamples = 0
        let r = try Evaluator.evaluate(model, on: [EvalSample(user: 0, history: UserHistory(items: []), target: 0,
                                                             targetTime: 0, masked: [])], options: o)
        // ECE = (|1 - 0.7| + |0 - 0.2| + |0 - 0.1|) / 3.
        XCTAssertEqual(r.modelECE!, 0.6 / 3, accuracy: 1e-6)
    }

    func testFactorModelsAreSafeForConcurrentScoring() throws {
        let d = toy()
        for kind in ["wals", "bpr"] {
            let model = try Baselines.train(kind: kind, on: d.interactions, catalog: d.catalog, numUsers: d.numUsers,
                                            options: ["factors": "4"])
            let histories = d.sequences()
            let expected = try model.scoreAll(histories)
            let results = UnsafeMutableBufferPointer<[Float]>.allocate(capacity: 8)
            results.initialize(repeating: [])
            defer { results.deinitialize(); results.deallocate() }  // deinitialize: LeakSanitizer found the arrays leaked
            DispatchQueue.concurrentPerform(iterations: 8) { i in results[i] = (try? model.scoreAll(histories)) ?? [] }
            for r in results { XCTAssertEqual(r, expected, kind) }
        }
    }
}
