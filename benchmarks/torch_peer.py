#!/usr/bin/env python3
"""PyTorch eager, the peer that `r2ec bench engine` and `r2ec bench train` run in the same run (when torch is there).

The benchmark model written the way a PyTorch user would: a Qwen2 decoder (RMSNorm, fused QKV with bias, rotary
embeddings, grouped-query attention through scaled_dot_product_attention, SwiGLU, tied LM head), random weights,
float32, eager mode, torch's own CPU threads set to the r2ec pool's count.

Usage: torch_peer.py prefill|train --batch B --length L [--threads N] [--seconds S]
Prints one JSON object: {"torch": version, "threads": N, "seconds": best seconds per call (prefill: one forward
with logits at the last token of each sequence; train: forward, next-token loss on every row, backward, AdamW),
"median": median seconds per call}. Exits with status 3 when torch cannot be imported.
"""
import argparse
import json
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as error:  # the bench command reports the peer as absent
    print(f"torch is not installed: {error}", file=sys.stderr)
    sys.exit(3)

D, LAYERS, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB, THETA = 256, 4, 4, 2, 64, 704, 8192, 1_000_000.0


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.RMSNorm(D, eps=1e-6)
        self.qkv = nn.Linear(D, (HEADS + 2 * KV_HEADS) * HEAD_DIM, bias=True)
        self.o = nn.Linear(HEADS * HEAD_DIM, D, bias=False)
        self.norm2 = nn.RMSNorm(D, eps=1e-6)
        self.gate_up = nn.Linear(D, 2 * FFN, bias=False)
        self.down = nn.Linear(FFN, D, bias=False)

    def forward(self, x, cos, sin):
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).split([HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM], dim=-1)
        q = q.view(b, n, HEADS, HEAD_DIM).transpose(1, 2)
        k = k.view(b, n, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = v.view(b, n, KV_HEADS, HEAD_DIM).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, n, HEADS * HEAD_DIM))
        gate, up = self.gate_up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Model(nn.Module):
    def __init__(self, max_len):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = nn.RMSNorm(D, eps=1e-6)
        inv = 1.0 / (THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float64) / HEAD_DIM))
        angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)
        for p in self.parameters():
            nn.init.normal_(p, std=0.02)

    def hidden(self, tokens):
        n = tokens.shape[1]
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, self.cos[:n], self.sin[:n])
        return self.norm(x)

    def logits(self, h):
        return h @ self.embed.weight.t()


def timed(body, seconds, at_least=3):
    body()
    times = []
    start = time.perf_counter()
    while len(times) < at_least or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        body()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["prefill", "train"])
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--length", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = Model(args.length)
    tokens = torch.randint(0, VOCAB, (args.batch, args.length))
    if args.mode == "prefill":
        model.eval()

        def body():
            with torch.inference_mode():
                model.logits(model.hidden(tokens)[:, -1])
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)

        def body():
            optimizer.zero_grad(set_to_none=True)
            logits = model.logits(model.hidden(tokens)[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    best, median = timed(body, args.seconds)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "seconds": best,
                      "median": median, "isa": torch.backends.cpu.get_cpu_capability()}))


if __name__ == "__main__":
    main()
