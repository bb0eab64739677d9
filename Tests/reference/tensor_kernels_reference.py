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


KERNELS = {f.__name__: f for f in
           [gemm, linear, rmsnorm, rope, softmax, silu, swiglu_fused, residual, scale, l2normalize, embedding,
            softmax_xent]}


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
