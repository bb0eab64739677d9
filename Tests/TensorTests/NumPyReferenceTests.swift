// Every kernel against an independent float64 NumPy implementation (Tests/reference/tensor_kernels_reference.py).
// The test writes the cases' inputs as JSON, runs the script with python3 and compares its outputs. A missing
// python3 or numpy FAILS the test (CI installs numpy): skipping would let the reference silently go unchecked.
import CKernels
import Foundation
import XCTest
@testable import Tensor

final class NumPyReferenceTests: XCTestCase {
    /// One kernel call: what the script is told, and what the Swift kernel produced.
    struct Case {
        var kernel: String
        var params: [String: Any]
        var inputs: [String: [Float]]
        var outputs: [String: [Float]]
        var tolerance: Float = 2e-5   // absolute, plus the same relative to the reference value
    }

    static let scriptURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("reference/tensor_kernels_reference.py")

    func testKernelsMatchFloat64NumPy() throws {
        let cases = gemmCases() + [linearCase(bias: true), linearCase(bias: false)] + perISA(normCases)
            + perISA(ropeCases) + perISA(softmaxCases) + perISA(activationCases) + [embeddingCase()] + crossEntropyCases()
            + perISA(backwardCases) + perISA(adamwCases)
        guard let reference = try runReference(cases) else { return }   // runReference has failed the test
        XCTAssertEqual(reference.count, cases.count, "the script answered every case")
        var report: [String] = []
        for (c, expected) in zip(cases, reference) {
            for (name, actual) in c.outputs {
                guard let want = expected[name] else { XCTFail("\(c.kernel): script has no output \(name)"); continue }
                XCTAssertEqual(actual.count, want.count, "\(c.kernel).\(name) length")
                var worst: Double = 0
                for (a, w) in zip(actual, want) {
                    let allowed = Double(c.tolerance) * (1 + abs(w))
                    worst = max(worst, abs(Double(a) - w) / allowed)
                    if !(abs(Double(a) - w) <= allowed) {
                        XCTFail("\(c.kernel) \(c.params).\(name): \(a) vs NumPy \(w)")
                        break
                    }
                }
                report.append("\(c.kernel).\(name): worst \(String(format: "%.3f", worst)) of tolerance")
            }
        }
        print(report.joined(separator: "\n"))
    }

    // MARK: cases

    /// `make`'s cases under every instruction set this CPU has (CKernels' elementwise.c variants), each tagged.
    func perISA(_ make: () -> [Case]) -> [Case] {
        var cases: [Case] = []
        CPU.forEachAvailable { isa in
            cases += make().map { c in
                var tagged = c
                tagged.params["isa"] = isa.description
                return tagged
            }
        }
        return cases
    }

    /// The backward kernels of RMSNorm (written and accumulated), fused SwiGLU, RoPE and softmax rows, called directly
    /// (their Swift wrappers are in Train), against NumPy's finite differences of its own float64 forwards.
    func backwardCases() -> [Case] {
        var cases: [Case] = []
        let isa = CPU.isa.c
        for (rows, dim, accumulate) in [(3, 37, false), (4, 64, true)] {
            let x = randomBuffer([rows, dim], seed: 21, range: -2...2), w = randomBuffer([dim], seed: 22)
            let dy = randomBuffer([rows, dim], seed: 23), dx = randomBuffer([rows, dim], seed: 24)
            let dw = randomBuffer([dim], seed: 25), rstd = FloatBuffer(shape: [rows]), out = FloatBuffer(shape: [rows, dim])
            let dxBefore = dx.toArray(), dwBefore = dw.toArray()
            RMSNorm.forward(out: out.data, input: x.pointer, weight: w.pointer, rows: rows, dim: dim, eps: 1e-6,
                            rstd: rstd.data)
            r2ec_rms_norm_backward(isa, dx.data, dw.data, dy.pointer, x.pointer, w.pointer, rstd.pointer, Int32(rows),
                                   Int32(dim), accumulate ? 1 : 0)
            cases.append(Case(kernel: "rmsnorm_backward",
                              params: ["rows": rows, "dim": dim, "eps": 1e-6, "accumulate": accumulate],
                              inputs: ["input": x.toArray(), "weight": w.toArray(), "dOut": dy.toArray(),
                                       "dInput": dxBefore, "dWeightBefore": dwBefore],
                              outputs: ["dInput": dx.toArray(), "dWeight": dw.toArray()], tolerance: 1e-4))
        }
        for (rows, ffn) in [(3, 21), (2, 48)] {
            let gateUp = randomBuffer([rows, 2 * ffn], seed: 26, range: -6...6), dy = randomBuffer([rows, ffn], seed: 27)
            let dGateUp = FloatBuffer(shape: [rows, 2 * ffn])
            r2ec_swiglu_backward(isa, dGateUp.data, dy.pointer, gateUp.pointer, Int32(rows), Int32(ffn))
            cases.append(Case(kernel: "swiglu_backward", params: ["rows": rows, "ffn": ffn],
                              inputs: ["gateUp": gateUp.toArray(), "dOut": dy.toArray()],
                              outputs: ["dGateUp": dGateUp.toArray()], tolerance: 1e-4))
        }
        for (rows, heads, headDim, stride, theta) in [(5, 3, 64, 200, 1e6), (3, 2, 18, 40, 1e4)] {
            cases.append(ropeCase("rope_backward", field: "dx", direction: -1, rows: rows, heads: heads,
                                  headDim: headDim, stride: stride, theta: theta, positionStep: (41, 5), seed: 28,
                                  tolerance: 1e-4))
        }
        // Causal rows (valid lengths 14...18 of 18: with and without a 16-float tail) and one full row.
        for (rows, cols, first, step) in [(5, 18, 14, 1), (1, 40, 40, 0)] {
            let scores = randomBuffer([rows, cols], seed: 29, range: -4...4), dP = randomBuffer([rows, cols], seed: 30)
            let dPBefore = dP.toArray(), probabilities = FloatBuffer(shape: [rows, cols])
            r2ec_softmax(isa, probabilities.data, scores.pointer, Int32(rows), Int32(cols), Int32(first), Int32(step), 1)
            r2ec_softmax_backward(isa, dP.data, probabilities.pointer, Int32(rows), Int32(cols), Int32(first),
                                  Int32(step))
            cases.append(Case(kernel: "softmax_backward",
                              params: ["rows": rows, "cols": cols, "firstValid": first, "validStep": step],
                              inputs: ["scores": scores.toArray(), "dP": dPBefore], outputs: ["dS": dP.toArray()],
                              tolerance: 1e-4))
        }
        return cases
    }

    /// Three AdamW steps (CKernels' r2ec_sum_squares for the global norm, then r2ec_adamw with clipping), against NumPy.
    func adamwCases() -> [Case] {
        let isa = CPU.isa.c
        let count = 1003, steps = 3
        let params = randomBuffer([count], seed: 31), grads = randomBuffer([steps * count], seed: 32, range: -0.2...0.2)
        let before = params.toArray()
        let m = FloatBuffer(shape: [count]), v = FloatBuffer(shape: [count])
        let (b1, b2, eps, lr, wd, clipNorm): (Float, Float, Float, Float, Float, Float) = (0.9, 0.95, 1e-8, 0.01, 0.1, 3)
        var norms: [Float] = []
        for t in 1...steps {
            let g = grads.pointer + (t - 1) * count
            let norm = r2ec_sum_squares(isa, g, count).squareRoot()
            norms.append(Float(norm))
            var k = r2ec_adamw_step(clip: Float(min(1, Double(clipNorm) / norm)), beta1: b1, beta2: b2,
                                    correction1: 1 - Float(pow(Double(b1), Double(t))),
                                    correction2: 1 - Float(pow(Double(b2), Double(t))), lr: lr, epsilon: eps,
                                    weight_decay: wd)
            r2ec_adamw(isa, params.data, g, m.data, v.data, count, &k)
        }
        return [Case(kernel: "adamw",
                     params: ["steps": steps, "beta1": Double(b1), "beta2": Double(b2), "eps": Double(eps),
                              "lr": Double(lr), "weightDecay": Double(wd), "clip": Double(clipNorm)],
                     inputs: ["params": before, "grads": grads.toArray()],
                     outputs: ["params": params.toArray(), "m": m.toArray(), "v": v.toArray(), "norms": norms])]
    }

    /// Every GEMM case under every instruction set this CPU has (the project's kernels, OpenBLAS when portable).
    func gemmCases() -> [Case] {
        var cases: [Case] = []
        CPU.forEachAvailable { isa in cases += gemmCases(isa: isa) }
        return cases
    }

    func gemmCases(isa: KernelISA) -> [Case] {
        var cases: [Case] = []
        for (m, n, k) in [(3, 5, 7), (17, 31, 65), (130, 40, 256), (33, 70, 600)] {
            for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                let a = randomBuffer([m * k], seed: 1), b = randomBuffer([k * n], seed: 2)
                let c = randomBuffer([m * n], seed: 3)
                let before = c.toArray()
                GEMM.forward(m: m, n: n, k: k, a: a.pointer, transA: transA, b: b.pointer, transB: transB, c: c.data,
                             alpha: 0.7, beta: 0.3)
                cases.append(Case(kernel: "gemm",
                                  params: ["m": m, "n": n, "k": k, "transA": transA, "transB": transB,
                                           "alpha": 0.7, "beta": 0.3, "isa": isa.description],
                                  inputs: ["a": a.toArray(), "b": b.toArray(), "c": before],
                                  outputs: ["c": c.toArray()]))
            }
        }
        return cases
    }

    func linearCase(bias: Bool) -> Case {
        let rows = 9, inDim = 33, outDim = 47
        let x = randomBuffer([rows, inDim], seed: 4), w = randomBuffer([outDim, inDim], seed: 5)
        let b = randomBuffer([outDim], seed: 6), out = FloatBuffer(shape: [rows, outDim])
        Linear.forward(out: out.data, input: x.pointer, weight: w.pointer, bias: bias ? b.pointer : nil,
                       rows: rows, inDim: inDim, outDim: outDim)
        var inputs = ["input": x.toArray(), "weight": w.toArray()]
        if bias { inputs["bias"] = b.toArray() }
        return Case(kernel: "linear", params: ["rows": rows, "inDim": inDim, "outDim": outDim], inputs: inputs,
                    outputs: ["out": out.toArray()])
    }

    func normCases() -> [Case] {
        var cases: [Case] = []
        for (rows, dim) in [(3, 17), (5, 256)] {
            let x = randomBuffer([rows, dim], seed: 7, range: -3...3), w = randomBuffer([dim], seed: 8)
            let out = FloatBuffer(shape: [rows, dim]), rstd = FloatBuffer(shape: [rows])
            RMSNorm.forward(out: out.data, input: x.pointer, weight: w.pointer, rows: rows, dim: dim, eps: 1e-6,
                            rstd: rstd.data)
            cases.append(Case(kernel: "rmsnorm", params: ["rows": rows, "dim": dim, "eps": 1e-6],
                              inputs: ["input": x.toArray(), "weight": w.toArray()],
                              outputs: ["out": out.toArray(), "rstd": rstd.toArray()]))
            let norms = FloatBuffer(shape: [rows])
            L2Normalize.forward(out: out.data, input: x.pointer, rows: rows, dim: dim, norms: norms.data)
            cases.append(Case(kernel: "l2normalize", params: ["rows": rows, "dim": dim, "eps": 1e-12],
                              inputs: ["input": x.toArray()], outputs: ["out": out.toArray(), "norms": norms.toArray()]))
        }
        return cases
    }

    func ropeCases() -> [Case] {
        var cases: [Case] = []
        // (rows, heads, headDim, rowStride, theta): q+k heads inside a fused QKV row, and a 10k-theta case.
        for (rows, heads, headDim, stride, theta) in [(7, 6, 64, 512, 1e6), (4, 3, 18, 60, 1e4)] {
            cases.append(ropeCase("rope", field: "x", direction: 1, rows: rows, heads: heads, headDim: headDim,
                                  stride: stride, theta: theta, positionStep: (37, 3), seed: 9, tolerance: 2e-5))
        }
        return cases
    }

    /// RoPE over `rows` rows of `stride` floats (random, `seed`) at positions (r * a + b) % 300, rotated by
    /// `direction` (1: forward, -1: its transpose, the backward pass), as the case `kernel` with the array `field`.
    func ropeCase(_ kernel: String, field: String, direction: Float, rows: Int, heads: Int, headDim: Int, stride: Int,
                  theta: Double, positionStep: (a: Int, b: Int), seed: UInt64, tolerance: Float) -> Case {
        let positions: [Int32] = (0..<rows).map { Int32(($0 * positionStep.a + positionStep.b) % 300) }
        let x = randomBuffer([rows, stride], seed: seed)
        let before = x.toArray()
        let table = RoPETable(headDim: headDim, maxPositions: 300, theta: theta)
        positions.withUnsafeBufferPointer {
            RoPE.rotate(x: x.data, positions: $0.baseAddress!, rows: rows, heads: heads, headDim: headDim,
                        rowStride: stride, table: table, direction: direction)
        }
        return Case(kernel: kernel,
                    params: ["rows": rows, "heads": heads, "headDim": headDim, "rowStride": stride, "theta": theta],
                    inputs: [field: before, "positions": positions.map(Float.init)],
                    outputs: [field: x.toArray()], tolerance: tolerance)
    }

    func softmaxCases() -> [Case] {
        var cases: [Case] = []
        let rows = 6, cols = 37
        let x = randomBuffer([rows, cols], seed: 10, range: -8...8)
        let out = FloatBuffer(shape: [rows, cols])
        Softmax.forward(out: out.data, input: x.pointer, rows: rows, cols: cols, scale: 0.125)
        cases.append(Case(kernel: "softmax", params: ["rows": rows, "cols": cols, "scale": 0.125, "mode": "full"],
                          inputs: ["input": x.toArray()], outputs: ["out": out.toArray()]))
        let lengths: [Int32] = [0, 1, 15, 16, 17, 37]
        lengths.withUnsafeBufferPointer {
            Softmax.forwardMasked(out: out.data, input: x.pointer, lengths: $0.baseAddress!, rows: rows, cols: cols,
                                  scale: 1)
        }
        cases.append(Case(kernel: "softmax", params: ["rows": rows, "cols": cols, "scale": 1.0, "mode": "masked"],
                          inputs: ["input": x.toArray(), "lengths": lengths.map(Float.init)],
                          outputs: ["out": out.toArray()]))
        Softmax.forwardCausal(out: out.data, input: x.pointer, rows: rows, cols: cols, offset: 20, scale: 0.5)
        cases.append(Case(kernel: "softmax",
                          params: ["rows": rows, "cols": cols, "scale": 0.5, "mode": "causal", "offset": 20],
                          inputs: ["input": x.toArray()], outputs: ["out": out.toArray()]))
        return cases
    }

    func activationCases() -> [Case] {
        let count = 1003
        let x = randomBuffer([count], seed: 11, range: -20...20), y = randomBuffer([count], seed: 12)
        let out = FloatBuffer(shape: [count])
        SiLU.forward(out: out.data, input: x.pointer, count: count)
        let silu = Case(kernel: "silu", params: [:], inputs: ["input": x.toArray()], outputs: ["out": out.toArray()])
        Residual.forward(out: out.data, a: x.pointer, b: y.pointer, count: count)
        let residual = Case(kernel: "residual", params: [:], inputs: ["a": x.toArray(), "b": y.toArray()],
                            outputs: ["out": out.toArray()])
        Scale.forward(out: out.data, input: x.pointer, scale: -0.3, count: count)
        let scale = Case(kernel: "scale", params: ["scale": -0.3], inputs: ["input": x.toArray()],
                         outputs: ["out": out.toArray()])
        let rows = 5, ffn = 45
        let gateUp = randomBuffer([rows, 2 * ffn], seed: 13, range: -6...6)
        let activated = FloatBuffer(shape: [rows, ffn])
        SwiGLU.forwardFused(out: activated.data, gateUp: gateUp.pointer, rows: rows, ffn: ffn)
        let swiglu = Case(kernel: "swiglu_fused", params: ["rows": rows, "ffn": ffn],
                          inputs: ["gateUp": gateUp.toArray()], outputs: ["out": activated.toArray()])
        return [silu, residual, scale, swiglu]
    }

    /// The LM head's fused loss and gradient under every instruction set (row lengths with and without a tail).
    func crossEntropyCases() -> [Case] {
        var cases: [Case] = []
        CPU.forEachAvailable { isa in
            for (rows, cols) in [(5, 37), (3, 300)] {
                let x = randomBuffer([rows, cols], seed: 15, range: -12...12)
                let targets: [Int32] = (0..<rows).map { Int32(($0 * 7 + 3) % cols) }
                let weights: [Float] = (0..<rows).map { [0.5, -1.25, 2, 0.1, 1][$0 % 5] }
                let before = x.toArray()
                var loss = [Double](repeating: 0, count: rows)
                targets.withUnsafeBufferPointer { t in
                    weights.withUnsafeBufferPointer { w in
                        CrossEntropy.forwardBackward(logits: x.data, rows: rows, cols: cols, targets: t.baseAddress!,
                                                     weights: w.baseAddress!, loss: &loss)
                    }
                }
                cases.append(Case(kernel: "softmax_xent", params: ["rows": rows, "cols": cols, "isa": isa.description],
                                  inputs: ["logits": before, "targets": targets.map(Float.init), "weights": weights],
                                  outputs: ["loss": loss.map(Float.init), "grad": x.toArray()]))
            }
        }
        return cases
    }

    func embeddingCase() -> Case {
        let vocab = 13, dim = 21
        let table = randomBuffer([vocab, dim], seed: 14)
        let ids: [Int32] = [12, 0, 5, 5, 7]
        let out = FloatBuffer(shape: [ids.count, dim])
        ids.withUnsafeBufferPointer {
            Embedding.forward(out: out.data, table: table.pointer, ids: $0.baseAddress!, rows: ids.count, dim: dim,
                              vocab: vocab)
        }
        return Case(kernel: "embedding", params: ["vocab": vocab, "dim": dim],
                    inputs: ["table": table.toArray(), "ids": ids.map(Float.init)], outputs: ["out": out.toArray()])
    }

    // MARK: running the script

    func runReference(_ cases: [Case]) throws -> [[String: [Double]]]? {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("r2ec-tensor-reference-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let inputURL = directory.appendingPathComponent("cases.json")
        let outputURL = directory.appendingPathComponent("out.json")
        let payload: [[String: Any]] = cases.map { c in
            ["kernel": c.kernel, "params": c.params, "inputs": c.inputs.mapValues { $0.map(Double.init) }]
        }
        try JSONSerialization.data(withJSONObject: payload).write(to: inputURL)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.scriptURL.path, inputURL.path, outputURL.path]
        let stderr = Pipe()
        process.standardError = stderr
        do { try process.run() } catch {
            XCTFail("cannot start python3 (needed for the NumPy reference; install python3 and numpy): \(error)")
            return nil
        }
        process.waitUntilExit()
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            let hint = message.contains("numpy") || process.terminationStatus == 127
                ? " — python3 with numpy is required (pip install numpy / apt-get install python3-numpy)" : ""
            XCTFail("NumPy reference script failed (status \(process.terminationStatus))\(hint):\n\(message)")
            return nil
        }
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: outputURL))
        guard let results = object as? [[String: [Double]]] else {
            XCTFail("NumPy reference wrote an unexpected shape of JSON")
            return nil
        }
        return results
    }
}
