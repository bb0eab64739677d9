#!/usr/bin/env python3
"""Independent float64 NumPy implementations of the Tensor kernels (Sources/Tensor), for TensorTests.

Usage: tensor_kernels_reference.py CASES.json OUT.json
CASES.json is a list of {"kernel": name, "params": {...}, "inputs": {name: flat list}}; OUT.json is a list of
{name: flat list} in the same order. Every computation is float64 and written from the mathematical definition
(Hugging Face's Qwen2 conventions where they matter), not from the Swift code.
"""
import json
import sys

import numpy as np


def gemm(p, x):
    m, n, k = p["m"], p["n"], p["k"]
    a = np.asarray(x["a"], dtype=np.float64).reshape((k, m) if p["transA"] else (m, k))
    b = np.asarray(x["b"], dtype=np.float64).reshape((n, k) if p["transB"] else (k, n))
    c = np.asarray(x["c"], dtype=np.float64).reshape(m, n)
    op_a = a.T if p["transA"] else a
    op_b = b.T if p["transB"] else b
    return {"c": p["alpha"] * (op_a @ op_b) + p["beta"] * c}


def linear(p, x):
    inp = np.asarray(x["input"], dtype=np.float64).reshape(p["rows"], p["inDim"])
    w = np.asarray(x["weight"], dtype=np.float64).reshape(p["outDim"], p["inDim"])
    out = inp @ w.T
    if "bias" in x:
        out = out + np.asarray(x["bias"], dtype=np.float64)
    return {"out": out}


def rmsnorm(p, x):
    inp = np.asarray(x["input"], dtype=np.float64).reshape(p["rows"], p["dim"])
    w = np.asarray(x["weight"], dtype=np.float64)
    rstd = 1.0 / np.sqrt(np.mean(inp * inp, axis=1, keepdims=True) + p["eps"])
    return {"out": inp * rstd * w, "rstd": rstd[:, 0]}


def rope(p, x):
    """HF Qwen2: q * cos + rotate_half(q) * sin, cos/sin = cat(freqs, freqs), rotate_half(x) = cat(-x2, x1)."""
    rows, heads, hd, stride = p["rows"], p["heads"], p["headDim"], p["rowStride"]
    buf = np.asarray(x["x"], dtype=np.float64).reshape(rows, stride).copy()
    pos = np.asarray(x["positions"], dtype=np.float64)
    inv_freq = 1.0 / (p["theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    freqs = np.outer(pos, inv_freq)                       # [rows, hd/2]
    emb = np.concatenate([freqs, freqs], axis=1)          # [rows, hd]
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    q = buf[:, : heads * hd].reshape(rows, heads, hd)
    half = hd // 2
    rotated = np.concatenate([-q[..., half:], q[..., :half]], axis=-1)
    buf[:, : heads * hd] = (q * cos + rotated * sin).reshape(rows, heads * hd)
    return {"x": buf}


def softmax_rows(scores, lengths):
    out = np.zeros_like(scores)
    for r, n in enumerate(lengths):
        if n == 0:
            continue
        s = scores[r, :n]
        e = np.exp(s - s.max())
        out[r, :n] = e / e.sum()
    return out


def softmax(p, x):
    rows, cols = p["rows"], p["cols"]
    scores = p["scale"] * np.asarray(x["input"], dtype=np.float64).reshape(rows, cols)
    if p["mode"] == "full":
        lengths = [cols] * rows
    elif p["mode"] == "masked":
        lengths = [int(v) for v in x["lengths"]]
    else:  # causal: query r sits at position offset + r and sees keys 0...offset+r
        lengths = [min(cols, max(0, p["offset"] + r + 1)) for r in range(rows)]
    return {"out": softmax_rows(scores, lengths)}


def silu(p, x):
    v = np.asarray(x["input"], dtype=np.float64)
    return {"out": v / (1.0 + np.exp(-v))}


def swiglu_fused(p, x):
    gu = np.asarray(x["gateUp"], dtype=np.float64).reshape(p["rows"], 2 * p["ffn"])
    gate, up = gu[:, : p["ffn"]], gu[:, p["ffn"]:]
    return {"out": gate / (1.0 + np.exp(-gate)) * up}


def residual(p, x):
    return {"out": np.asarray(x["a"], dtype=np.float64) + np.asarray(x["b"], dtype=np.float64)}


def scale(p, x):
    return {"out": p["scale"] * np.asarray(x["input"], dtype=np.float64)}


def l2normalize(p, x):
    v = np.asarray(x["input"], dtype=np.float64).reshape(p["rows"], p["dim"])
    norms = np.linalg.norm(v, axis=1)
    return {"out": v / np.maximum(norms, p["eps"])[:, None], "norms": norms}


def embedding(p, x):
    table = np.asarray(x["table"], dtype=np.float64).reshape(p["vocab"], p["dim"])
    ids = np.asarray(x["ids"], dtype=np.int64)
    return {"out": table[ids]}


def softmax_xent(p, x):
    """Weighted cross-entropy of each row against its target, and its gradient w * (softmax - onehot)."""
    rows, cols = p["rows"], p["cols"]
    z = np.asarray(x["logits"], dtype=np.float64).reshape(rows, cols)
    t = np.asarray(x["targets"], dtype=np.int64)
    w = np.asarray(x["weights"], dtype=np.float64)
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    lse = m[:, 0] + np.log(e.sum(axis=1))
    probabilities = e / e.sum(axis=1, keepdims=True)
    onehot = np.zeros_like(z)
    onehot[np.arange(rows), t] = 1
    return {"loss": w * (lse - z[np.arange(rows), t]), "grad": w[:, None] * (probabilities - onehot)}


def vjp_by_differences(f, inputs, dy, h=1e-6):
    """d(sum(dy * f(inputs))) / d inputs[name] for every input, by central differences of the float64 forward f
    (every kernel here is smooth, so the truncation error is ~h^2)."""
    grads = {}
    for name, value in inputs.items():
        g = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            up = {k: v.copy() for k, v in inputs.items()}
            down = {k: v.copy() for k, v in inputs.items()}
            up[name][i] += h
            down[name][i] -= h
            g[i] = np.sum(dy * (f(**up) - f(**down))) / (2 * h)
        grads[name] = g
    return grads


def rmsnorm_backward(p, x):
    """dx (added to dx0 when accumulating) and dw of RMSNorm, by finite differences of its forward."""
    rows, dim, eps = p["rows"], p["dim"], p["eps"]
    inp = np.asarray(x["input"], dtype=np.float64).reshape(rows, dim)
    w = np.asarray(x["weight"], dtype=np.float64)
    dy = np.asarray(x["dOut"], dtype=np.float64).reshape(rows, dim)

    def forward(inp, w):
        return inp / np.sqrt(np.mean(inp * inp, axis=1, keepdims=True) + eps) * w

    g = vjp_by_differences(forward, {"inp": inp, "w": w}, dy)
    dx = g["inp"] + (np.asarray(x["dInput"], dtype=np.float64).reshape(rows, dim) if p["accumulate"] else 0)
    return {"dInput": dx, "dWeight": np.asarray(x["dWeightBefore"], dtype=np.float64) + g["w"]}


def swiglu_backward(p, x):
    """d/d[gate | up] of sum(dy * silu(gate) * up), by finite differences."""
    rows, ffn = p["rows"], p["ffn"]
    gu = np.asarray(x["gateUp"], dtype=np.float64).reshape(rows, 2 * ffn)
    dy = np.asarray(x["dOut"], dtype=np.float64).reshape(rows, ffn)
    g = vjp_by_differences(lambda gate, up: gate / (1.0 + np.exp(-gate)) * up,
                           {"gate": gu[:, :ffn].copy(), "up": gu[:, ffn:].copy()}, dy)
    return {"dGateUp": np.concatenate([g["gate"], g["up"]], axis=1)}


def rope_backward(p, x):
    """The gradient through rope's rotation (of the rotated heads; the rest of a row passes through), by differences."""
    rows, stride = p["rows"], p["rowStride"]
    dy = np.asarray(x["dx"], dtype=np.float64).reshape(rows, stride)

    def forward(v):
        return rope(p, {"x": v.ravel(), "positions": x["positions"]})["x"]

    zero = np.zeros((rows, stride))
    return {"dx": vjp_by_differences(forward, {"v": zero}, dy)["v"]}


def softmax_backward(p, x):
    """d sum(dP * P) / d scores of causal (or masked) softmax rows, by finite differences of the forward."""
    rows, cols = p["rows"], p["cols"]
    scores = np.asarray(x["scores"], dtype=np.float64).reshape(rows, cols)
    dp = np.asarray(x["dP"], dtype=np.float64).reshape(rows, cols)
    lengths = [min(cols, max(0, p["firstValid"] + r * p["validStep"])) for r in range(rows)]
    g = vjp_by_differences(lambda s: softmax_rows(s, lengths), {"s": scores}, dp)
    return {"dS": g["s"]}


def adamw(p, x):
    """`steps` AdamW updates with global-norm clipping, every quantity in float64 (AdamW.swift's definition)."""
    w = np.asarray(x["params"], dtype=np.float64).copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    grads = np.asarray(x["grads"], dtype=np.float64).reshape(p["steps"], -1)
    b1, b2, eps, lr, wd, clip_norm = p["beta1"], p["beta2"], p["eps"], p["lr"], p["weightDecay"], p["clip"]
    norms = []
    for t in range(1, p["steps"] + 1):
        g = grads[t - 1]
        norm = np.sqrt(np.sum(g * g))
        norms.append(norm)
        g = g * (min(1.0, clip_norm / norm))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * ((m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps) + wd * w)
    return {"params": w, "m": m, "v": v, "norms": np.asarray(norms)}


KERNELS = {f.__name__: f for f in
           [gemm, linear, rmsnorm, rope, softmax, silu, swiglu_fused, residual, scale, l2normalize, embedding,
            softmax_xent, rmsnorm_backward, swiglu_backward, rope_backward, softmax_backward, adamw]}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    results = []
    for case in cases:
        outputs = KERNELS[case["kernel"]](case["params"], case["inputs"])
        results.append({name: np.asarray(v, dtype=np.float64).ravel().tolist() for name, v in outputs.items()})
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
