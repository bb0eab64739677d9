#!/usr/bin/env python3
"""Independent float64 NumPy reference for r2ec's training step (issue 5), written from the math.

Reads a checkpoint directory (config.json + model.safetensors, Hugging Face Qwen2 names) and a request JSON, runs
`steps` AdamW updates whose gradients come from central finite differences of the loss below (no backward pass
here at all), and writes, per step, the loss before the update and, for the first step, every tensor's gradient.

Loss = token loss + recommendation loss, over a batch of sequences each run on its own from position 0:
  token loss  = sum_i w_i * CE(hidden[seq_i][pos_i] @ W_lm^T, target_i)
  rec loss    = sum_u w_u * CE(cos(user_u, columns) / tau, target_u), columns = the batch items' read-outs (final-norm
                hidden state at each item sequence's last token, L2-normalised) followed by fixed unit vectors;
                masked columns (other than the target) are excluded from the softmax; optional per-column offsets
                (the logQ correction) are added to every user's logits.
AdamW: bias-corrected, decoupled weight decay on 2-D tensors only, global grad-norm clip, linear warm-up.

usage: train_reference.py CHECKPOINT_DIR REQUEST.json OUTPUT.json
"""
import json
import os
import struct
import sys

try:
    import numpy as np
except ImportError:
    sys.stderr.write("train_reference.py needs numpy: pip install numpy\n")
    sys.exit(3)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", meta["dtype"]
        begin, end = meta["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], dtype="<f4").astype(np.float64).reshape(meta["shape"])
    return out


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate(x, theta):
    """x [T, heads, hd]: HF rotate_half rotary embedding at positions 0..T-1."""
    t, _, hd = x.shape
    half = hd // 2
    inv = 1.0 / theta ** (np.arange(half) * 2.0 / hd)
    ang = np.arange(t)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], axis=-1)[:, None, :]
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def decoder(params, cfg, ids, dropout=None, offset=0):
    """Final-norm hidden states [T, d] of one sequence. `dropout`, if given, holds the masks (0 or 1/(1-p)) of the
    whole batch's rows: "embedding", and per layer "attention" and "mlp"; this sequence's rows start at `offset`."""
    d = cfg["hidden_size"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = d // heads
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    x = params["model.embed_tokens.weight"][ids]
    t = len(ids)

    def mask(site, layer=None):
        if dropout is None:
            return 1.0
        m = dropout[site] if layer is None else dropout[site][layer]
        return m[offset:offset + t]
    x = x * mask("embedding")
    causal = np.triu(np.ones((t, t), dtype=bool), k=1)
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, params[p + "input_layernorm.weight"], eps)
        q = h @ params[p + "self_attn.q_proj.weight"].T + params[p + "self_attn.q_proj.bias"]
        k = h @ params[p + "self_attn.k_proj.weight"].T + params[p + "self_attn.k_proj.bias"]
        v = h @ params[p + "self_attn.v_proj.weight"].T + params[p + "self_attn.v_proj.bias"]
        q = rotate(q.reshape(t, heads, hd), theta)
        k = rotate(k.reshape(t, kv, hd), theta)
        v = v.reshape(t, kv, hd)
        out = np.zeros((t, heads, hd))
        for head in range(heads):
            g = head // (heads // kv)
            s = q[:, head] @ k[:, g].T / np.sqrt(hd)
            s[causal] = -np.inf
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, head] = s @ v[:, g]
        x = x + mask("attention", layer) * (out.reshape(t, heads * hd) @ params[p + "self_attn.o_proj.weight"].T)
        h = rms_norm(x, params[p + "post_attention_layernorm.weight"], eps)
        gate = h @ params[p + "mlp.gate_proj.weight"].T
        up = h @ params[p + "mlp.up_proj.weight"].T
        x = x + mask("mlp", layer) * ((gate / (1 + np.exp(-gate)) * up) @ params[p + "mlp.down_proj.weight"].T)
    return rms_norm(x, params["model.norm.weight"], eps)


def cross_entropy(logits, target):
    m = logits.max()
    return np.log(np.sum(np.exp(logits - m))) + m - logits[target]


def loss(params, cfg, request):
    dropout = request.get("dropout")
    if dropout is not None:
        d = cfg["hidden_size"]
        dropout = {"embedding": np.array(dropout["embedding"]).reshape(-1, d),
                   "attention": [np.array(m).reshape(-1, d) for m in dropout["attention"]],
                   "mlp": [np.array(m).reshape(-1, d) for m in dropout["mlp"]]}
    offsets = np.cumsum([0] + [len(s) for s in request["sequences"]])
    hidden = [decoder(params, cfg, np.array(s), dropout, offsets[i]) for i, s in enumerate(request["sequences"])]
    total = 0.0
    lm = request.get("lm")
    if lm:
        head = params["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else params["lm_head.weight"]
        for s, pos, target, w in zip(lm["sequence"], lm["position"], lm["target"], lm["weight"]):
            total += w * cross_entropy(head @ hidden[s][pos], target)
    rec = request.get("rec")
    if rec:
        def unit(v):
            return v / np.linalg.norm(v)
        columns = [unit(hidden[s][-1]) for s in rec["items"]] + [np.array(f) for f in rec.get("fixed", [])]
        columns = np.array(columns)
        for u, (s, target, w) in enumerate(zip(rec["users"], rec["targets"], rec["weights"])):
            logits = columns @ unit(hidden[s][-1]) / rec["tau"] + np.array(rec.get("offsets", [0.0] * len(columns)))
            keep = np.ones(len(columns), dtype=bool)
            for c in rec.get("masked", [[]] * len(rec["users"]))[u]:
                if c != target:
                    keep[c] = False
            index = int(np.sum(keep[:target]))
            total += w * cross_entropy(logits[keep], index)
    return total


def finite_difference_gradient(params, cfg, request, eps=1e-5):
    grads = {}
    for name, tensor in params.items():
        g = np.zeros_like(tensor)
        flat, gflat = tensor.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            plus = loss(params, cfg, request)
            flat[i] = old - eps
            minus = loss(params, cfg, request)
            flat[i] = old
            gflat[i] = (plus - minus) / (2 * eps)
        grads[name] = g
    return grads


def main():
    checkpoint, request_path, output_path = sys.argv[1:4]
    with open(os.path.join(checkpoint, "config.json")) as f:
        cfg = json.load(f)
    with open(request_path) as f:
        request = json.load(f)
    params = read_safetensors(os.path.join(checkpoint, "model.safetensors"))
    if cfg.get("tie_word_embeddings", False):
        params.pop("lm_head.weight", None)
    opt = request.get("adamw", {})
    lr, warmup = opt.get("lr", 1e-2), opt.get("warmup", 1)
    b1, b2, eps, wd, clip = opt.get("beta1", 0.9), opt.get("beta2", 0.95), opt.get("eps", 1e-8), \
        opt.get("weight_decay", 0.0), opt.get("clip", 1.0)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    out = {"losses": [], "grad_norms": []}
    for step in range(request.get("steps", 1)):
        out["losses"].append(loss(params, cfg, request))
        grads = finite_difference_gradient(params, cfg, request)
        if step == 0:
            out["gradients"] = {k: g.reshape(-1).tolist() for k, g in grads.items()}
        norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        out["grad_norms"].append(norm)
        scale = clip / norm if clip > 0 and norm > clip else 1.0
        rate = lr * (step + 1) / warmup if step < warmup else lr
        t = step + 1
        for k in params:
            g = grads[k] * scale
            m[k] = b1 * m[k] + (1 - b1) * g
            v2[k] = b2 * v2[k] + (1 - b2) * g * g
            m_hat, v_hat = m[k] / (1 - b1 ** t), v2[k] / (1 - b2 ** t)
            decay = wd if params[k].ndim == 2 else 0.0
            params[k] -= rate * (m_hat / (np.sqrt(v_hat) + eps) + decay * params[k])
    out["losses"].append(loss(params, cfg, request))
    with open(output_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
