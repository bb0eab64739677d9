#!/usr/bin/env python3
"""Independent float64 NumPy reference of a Qwen2-architecture decoder and the R2ec dual-head readout.

Reads a checkpoint directory (config.json, model.safetensors, tokenizer.json) and a request JSON, writes the
answers as JSON. Each sequence is run on its own, with no cache, in float64; the Swift engine's ragged batching,
KV cache and fused projections are deliberately absent here.

usage: qwen2_reference.py CHECKPOINT_DIR REQUEST.json OUTPUT.json

Request keys (all optional):
  "forward":  [[ids...], ...]                      -> "forward": logits per sequence, [len][vocab]
  "readout":  [[ids...], ...]                      -> "readout": L2-normalised final-norm hidden state at the last token
  "scores":   {"users": [[ids]], "items": [[ids]], "tau": t}
                                                   -> "scores": [users][items] cosine / tau
  "generate": {"prompts": [[ids]], "max_new_tokens": n, "stop_text": "<answer>"}
                                                   -> "generate": greedy continuations (ids), each stopping once
                                                      its decoded text ends with stop_text, or, at the limit,
                                                      with the stop text's token appended
"""
import json
import os
import struct
import sys

try:
    import numpy as np
except ImportError:  # the Swift test reports this line verbatim
    sys.stderr.write("qwen2_reference.py needs numpy: pip install numpy\n")
    sys.exit(3)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        chunk = data[begin:end]
        dtype = meta["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(chunk, dtype="<f4").astype(np.float64)
        elif dtype == "F16":
            arr = np.frombuffer(chunk, dtype="<f2").astype(np.float64)
        elif dtype == "BF16":
            u16 = np.frombuffer(chunk, dtype="<u2").astype(np.uint32)
            arr = (u16 << 16).view(np.float32).astype(np.float64)
        else:
            raise ValueError(f"unsupported dtype {dtype} for {name}")
        tensors[name] = arr.reshape(meta["shape"])
    return tensors


def gpt2_byte_decoder():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars = {}
    extra = 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in chars.items()}


class TokenText:
    """Turns ids back into bytes, to find the stop text in a generation."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            tok = json.load(f)
        self.pieces = {}
        decoder = gpt2_byte_decoder()
        for token, i in tok["model"]["vocab"].items():
            self.pieces[i] = bytes(decoder[ch] for ch in token)
        for added in tok.get("added_tokens", []):
            self.pieces[added["id"]] = added["content"].encode("utf-8")
        self.id_of = {v: k for k, v in self.pieces.items()}

    def text(self, ids):
        return b"".join(self.pieces.get(i, b"") for i in ids)


class Qwen2:
    def __init__(self, directory):
        with open(os.path.join(directory, "config.json")) as f:
            cfg = json.load(f)
        self.d = cfg["hidden_size"]
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads", self.n_heads)
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.theta = cfg.get("rope_theta", 10000.0)
        self.head = self.d // self.n_heads
        self.w = read_safetensors(os.path.join(directory, "model.safetensors"))
        self.lm_head = self.w["lm_head.weight"] if "lm_head.weight" in self.w else self.w["model.embed_tokens.weight"]

    def rms(self, x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * weight

    def rotary(self, x, positions):
        # x: [heads, len, head]; Hugging Face's rotate_half convention (halves, not interleaved pairs).
        half = self.head // 2
        inv_freq = 1.0 / (self.theta ** (np.arange(half, dtype=np.float64) * 2.0 / self.head))
        angles = positions[:, None].astype(np.float64) * inv_freq[None, :]
        cos = np.cos(np.concatenate([angles, angles], axis=-1))
        sin = np.sin(np.concatenate([angles, angles], axis=-1))
        rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rotated * sin

    def hidden(self, ids):
        """Final-norm hidden states [len, d] of one sequence."""
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        x = self.w["model.embed_tokens.weight"][ids]
        pos = np.arange(n)
        future = np.triu(np.ones((n, n), dtype=bool), k=1)
        for layer in range(self.n_layers):
            p = f"model.layers.{layer}."
            h = self.rms(x, self.w[p + "input_layernorm.weight"])
            q = h @ self.w[p + "self_attn.q_proj.weight"].T + self.w[p + "self_attn.q_proj.bias"]
            k = h @ self.w[p + "self_attn.k_proj.weight"].T + self.w[p + "self_attn.k_proj.bias"]
            v = h @ self.w[p + "self_attn.v_proj.weight"].T + self.w[p + "self_attn.v_proj.bias"]
            q = self.rotary(q.reshape(n, self.n_heads, self.head).transpose(1, 0, 2), pos)
            k = self.rotary(k.reshape(n, self.n_kv, self.head).transpose(1, 0, 2), pos)
            v = v.reshape(n, self.n_kv, self.head).transpose(1, 0, 2)
            group = self.n_heads // self.n_kv
            heads = []
            for hq in range(self.n_heads):
                kv = hq // group
                s = q[hq] @ k[kv].T / np.sqrt(self.head)
                s = np.where(future, -np.inf, s)
                s = np.exp(s - s.max(axis=-1, keepdims=True))
                s = s / s.sum(axis=-1, keepdims=True)
                heads.append(s @ v[kv])
            attn = np.concatenate(heads, axis=-1)  # [len, heads*head], head-major columns
            x = x + attn @ self.w[p + "self_attn.o_proj.weight"].T
            h = self.rms(x, self.w[p + "post_attention_layernorm.weight"])
            gate = h @ self.w[p + "mlp.gate_proj.weight"].T
            up = h @ self.w[p + "mlp.up_proj.weight"].T
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ self.w[p + "mlp.down_proj.weight"].T
        return self.rms(x, self.w["model.norm.weight"])

    def logits(self, ids):
        return self.hidden(ids) @ self.lm_head.T

    def readout(self, ids):
        h = self.hidden(ids)[-1]
        return h / np.linalg.norm(h)

    def greedy(self, prompt, max_new, stop_text, text):
        stop = stop_text.encode("utf-8")
        out = []
        while len(out) < max_new:
            nxt = int(np.argmax(self.logits(list(prompt) + out)[-1]))
            out.append(nxt)
            if text.text(out).endswith(stop):
                return out
        return out + [text.id_of[stop]]


def main():
    directory, request_path, output_path = sys.argv[1:4]
    with open(request_path) as f:
        req = json.load(f)
    model = Qwen2(directory)
    out = {}
    if "forward" in req:
        out["forward"] = [model.logits(ids).tolist() for ids in req["forward"]]
    if "readout" in req:
        out["readout"] = [model.readout(ids).tolist() for ids in req["readout"]]
    if "scores" in req:
        s = req["scores"]
        users = np.array([model.readout(ids) for ids in s["users"]])
        items = np.array([model.readout(ids) for ids in s["items"]])
        out["scores"] = (users @ items.T / s.get("tau", 0.02)).tolist()
    if "generate" in req:
        g = req["generate"]
        text = TokenText(os.path.join(directory, "tokenizer.json"))
        out["generate"] = [model.greedy(p, g["max_new_tokens"], g.get("stop_text", "<answer>"), text)
                           for p in g["prompts"]]
    with open(output_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
