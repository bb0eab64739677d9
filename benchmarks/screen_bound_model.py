"""How many items a rigorous screen of the int8 item table would re-score (docs/scale.md, "int4 screening").

Reads an item table (a safetensors file of one float32 [items, hidden] tensor, e.g. one `r2ec serve
--item-table-cache DIR` saved), quantises it to int8 as r2ec does (scale max|v| / 127), and models the ranking pass
of Tensor.Int4Screen in float64/float32 numpy: screen rows = int8 rows less their mean, at BITS bits with one scale
per row; per item an upper bound of the exact score (the screen's score plus ||x_perp|| times the row's rounding error
outside the stored directions); the best 2 depth items by bound re-scored exactly, T their depth-th best exact score,
every item whose bound reaches T re-scored. Variants: 4 bits with the rounding error's exact projections on the items'
top p principal directions stored per item (p = 0 is what Int4Screen does), and 5-7 bits without. Queries stand in
for user vectors: random items plus N(0, 0.02^2) per dimension, normalised (at 4 bits, p = 0, the median count
matched `bench scale --int4-screen --item-vectors`'s real user vectors within 3%).

    python benchmarks/screen_bound_model.py TABLE.safetensors [QUERIES] [DEPTH]
"""
import json
import struct
import sys

import numpy as np


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    (name,) = [k for k in header if k != "__metadata__"]
    begin, end = header[name]["data_offsets"]
    return np.frombuffer(data[begin:end], dtype=np.float32).reshape(header[name]["shape"])


def shortlist(y, approx, error, queries, depth, project=None):
    counts = []
    for x in queries:
        exact = y @ x
        upper = approx @ x
        if project is None:
            upper = upper + np.linalg.norm(x) * error
        else:
            directions, projections, perp = project
            xv = directions.T @ x
            upper = upper + projections @ xv + np.sqrt(max(x @ x - xv @ xv, 0)) * perp
        first = np.argpartition(-upper, 2 * depth)[: 2 * depth]
        threshold = np.sort(exact[first])[::-1][depth - 1]
        counts.append(int((upper >= threshold).sum()))
    return int(np.median(counts)), int(np.percentile(counts, 90))


def main():
    w = load(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    depth = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    rng = np.random.default_rng(0)
    s8 = np.abs(w).max(1) / 127
    y = (s8[:, None] * np.clip(np.rint(w / np.where(s8 > 0, s8, 1)[:, None]), -127, 127)).astype(np.float32)
    mean = y.mean(0)
    queries = y[rng.choice(len(y), count)] + rng.normal(0, 0.02, (count, y.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1)[:, None]
    print(f"{len(y)} items x {y.shape[1]}, {count} queries, depth {depth}: items re-scored (median, p90)")
    second = (y[::10].T @ y[::10]).astype(np.float64) / len(y[::10])
    directions = np.linalg.eigh(second)[1][:, ::-1].astype(np.float32)
    for bits in (4, 5, 6, 7):
        levels = 2 ** (bits - 1) - 1
        d = y - mean
        step = np.abs(d).max(1) / levels
        residual = d - step[:, None] * np.clip(np.rint(d / np.where(step > 0, step, 1)[:, None]), -levels, levels)
        del d
        error = np.linalg.norm(residual, axis=1)
        approx = y - residual
        row_bytes = y.shape[1] * bits // 8 + 8
        for p in (0, 1, 8, 32) if bits == 4 else (0,):
            if p == 0:
                median, p90 = shortlist(y, approx, error, queries, depth)
            else:
                v = directions[:, :p]
                projections = residual @ v
                perp = np.sqrt(np.maximum(error ** 2 - (projections ** 2).sum(1), 0))
                median, p90 = shortlist(y, approx, error, queries, depth, (v, projections, perp))
            print(f"  {bits} bits, {p:2d} stored projections ({row_bytes + 4 * p} bytes per item; int8: "
                  f"{y.shape[1] + 8}): {median}, {p90}", flush=True)


if __name__ == "__main__":
    main()
