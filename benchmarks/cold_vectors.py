#!/usr/bin/env python3
"""Where a dual-head checkpoint puts new items: item vectors of a cold-start dataset, outside the Swift engine.

Encodes every item prompt of FULL (the dataset with the held-out items, RecBole atomic files) with the checkpoint's
tokenizer (byte-level BPE, GPT-2 pre-tokenisation, written here) and network (Tests/reference/qwen2_reference.py,
float64 NumPy), items with training interactions in TRAIN's leave-one-out training split as their prompt with
statistics, the others as a new item's prompt ("Average rating: none", "Raters: 0"), as `r2ec eval --model` and
UpsertItems render them. First checks that its vectors of TRAIN's first N items (with TRAIN's statistics) equal the
checkpoint's cached item_table.safetensors (cosine >= .9999), then reports:
  - tokens per title word, new items against warm ones (the tokenizer never saw the new titles);
  - for warm items, the cosine between the vector of the prompt with statistics and of the new-item prompt of the
    same item (how far "Raters: 0" alone moves an item);
  - nearest-neighbour cosine to a warm item, and the share of the 10 nearest warm items sharing a genre, for new
    items, for warm items rendered as new, and for warm items themselves (leaving themselves out), beside the share
    for random pairs;
  - the mean cosine between two new items and between two warm items (do new items collapse into one region?).

usage: cold_vectors.py CHECKPOINT FULL TRAIN [--json OUT] [--check N]
"""
import argparse
import json
import math
import os
import sys
import unicodedata

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "reference"))
from qwen2_reference import Qwen2, read_safetensors  # noqa: E402


def byte_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def is_letter(c):
    return unicodedata.category(c).startswith("L")


def is_number(c):
    return unicodedata.category(c).startswith("N")


def pre_tokenize(s):
    """GPT-2's 's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+, scanned by hand."""
    out, i, n = [], 0, len(s)
    while i < n:
        if s[i] == "'":
            hit = next((c for c in ("s", "t", "re", "ve", "m", "ll", "d") if s.startswith(c, i + 1)), None)
            if hit:
                out.append("'" + hit)
                i += 1 + len(hit)
                continue
        j = i + 1 if s[i] == " " and i + 1 < n and not s[i + 1].isspace() else i
        c = s[j]
        if not c.isspace():
            kind = is_letter if is_letter(c) else is_number if is_number(c) else None
            k = j
            if kind:
                while k < n and kind(s[k]):
                    k += 1
            else:
                while k < n and not (s[k].isspace() or is_letter(s[k]) or is_number(s[k])):
                    k += 1
            out.append(s[i:k])
            i = k
            continue
        k = i
        while k < n and s[k].isspace():
            k += 1
        if k < n and k - i > 1:
            k -= 1
        out.append(s[i:k])
        i = k
    return out


class BPE:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            tok = json.load(f)
        self.vocab = tok["model"]["vocab"]
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in tok["model"]["merges"]]
        self.rank = {}
        for r, m in enumerate(merges):
            self.rank.setdefault(m, r)
        self.added = sorted(((a["content"], a["id"]) for a in tok.get("added_tokens", [])), key=lambda a: -len(a[0]))
        self.b2u = byte_to_unicode()
        self.cache = {}

    def word(self, w):
        if w in self.cache:
            return self.cache[w]
        symbols = [self.b2u[b] for b in w.encode("utf-8")]
        while len(symbols) > 1:
            best = min(range(len(symbols) - 1), key=lambda k: self.rank.get((symbols[k], symbols[k + 1]), math.inf))
            pair = (symbols[best], symbols[best + 1])
            if pair not in self.rank:
                break
            merged, k = [], 0
            while k < len(symbols):
                if k + 1 < len(symbols) and (symbols[k], symbols[k + 1]) == pair:
                    merged.append(pair[0] + pair[1])
                    k += 2
                else:
                    merged.append(symbols[k])
                    k += 1
            symbols = merged
        ids = [self.vocab[s] for s in symbols]
        self.cache[w] = ids
        return ids

    def encode(self, text):
        out, start, i = [], 0, 0
        while i < len(text):
            hit = next(((c, t) for c, t in self.added if text.startswith(c, i)), None)
            if hit:
                for w in pre_tokenize(text[start:i]):
                    out += self.word(w)
                out.append(hit[1])
                i += len(hit[0])
                start = i
            else:
                i += 1
        for w in pre_tokenize(text[start:]):
            out += self.word(w)
        return out


def read_atomic(directory):
    name = os.path.basename(os.path.normpath(directory))

    def rows(ext):
        with open(os.path.join(directory, f"{name}.{ext}"), encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            return [h.split(":")[0] for h in header], [line.rstrip("\n").split("\t") for line in f if line.strip()]

    head, item_rows = rows("item")
    col = {h: i for i, h in enumerate(head)}
    items = {}
    for r in item_rows:
        year = r[col["release_year"]] if "release_year" in col else ""
        items[r[col["item_id"]]] = {
            "title": r[col["movie_title"]], "year": int(year) if year.isdigit() else 0,
            "genres": r[col["class"]].split(" ") if r[col["class"]] else []}
    head, inter_rows = rows("inter")
    col = {h: i for i, h in enumerate(head)}
    inter = [(r[col["user_id"]], r[col["item_id"]], float(r[col["rating"]]), float(r[col["timestamp"]]))
             for r in inter_rows]
    return items, inter


def order_key(i):
    return (0, int(i), "") if i.isdigit() else (1, 0, i)


def loo_training_stats(inter):
    """Per item (count, mean rating) over the leave-one-out training interactions (each user's sequence sorted stably
    by time; the last is test and the second-last validation when the user has three or more, the last only with two)."""
    by_user = {}
    for x in inter:
        by_user.setdefault(x[0], []).append(x)
    count, total = {}, {}
    for seq in by_user.values():
        seq = sorted(seq, key=lambda x: x[3])
        keep = seq[:-2] if len(seq) >= 3 else seq[:-1] if len(seq) == 2 else seq
        for _, item, rating, _ in keep:
            count[item] = count.get(item, 0) + 1
            total[item] = total.get(item, 0.0) + rating
    return {i: (count[i], total[i] / count[i]) for i in count}


def prompt(item, stats):
    title = item["title"] + (f" ({item['year']})" if item["year"] > 0 else "")
    lines = ["Summarise the item.", f"Title: {title}"]
    if stats:
        mean = math.floor(np.float32(stats[1]) * 10 + 0.5)
        lines.append(f"Average rating: {mean // 10}.{mean % 10}")
    else:
        lines.append("Average rating: none")
    lines.append(f"Raters: {stats[0] if stats else 0}")
    if item["genres"]:
        lines.append("Genres: " + ", ".join(item["genres"]))
    return "\n".join(lines) + "\n<answer>"


def neighbours(queries, keys, genres_q, genres_k, exclude_self=False, k=10):
    sims = queries @ keys.T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :k]
    share = np.mean([[bool(genres_q[i] & genres_k[j]) for j in row] for i, row in enumerate(top)])
    return float(np.mean(sims.max(axis=1))), float(share)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("full")
    p.add_argument("train")
    p.add_argument("--json")
    p.add_argument("--check", type=int, default=300, help="cached table rows checked (default 300)")
    a = p.parse_args()
    items, inter = read_atomic(a.full)
    stats = loo_training_stats(inter)
    ids = sorted(items, key=order_key)
    warm = [i for i in ids if i in stats]
    new = [i for i in ids if i not in stats]
    bpe = BPE(os.path.join(a.checkpoint, "tokenizer.json"))
    net = Qwen2(a.checkpoint)

    def encode(prompts):
        return np.array([net.readout(bpe.encode(t)) for t in prompts])

    warm_vec = encode([prompt(items[i], stats[i]) for i in warm])
    warm_as_new = encode([prompt(items[i], None) for i in warm])
    new_vec = encode([prompt(items[i], None) for i in new])

    # The check: TRAIN's first items with TRAIN's own statistics are exactly the rows of the cached table.
    train_items, train_inter = read_atomic(a.train)
    train_stats = loo_training_stats(train_inter)
    train_ids = sorted(train_items, key=order_key)[:a.check]
    table = next(iter(read_safetensors(os.path.join(a.checkpoint, "item_table.safetensors")).values()))
    check = encode([prompt(train_items[i], train_stats.get(i)) for i in train_ids])
    cos = np.sum(check * table[:len(train_ids)], axis=1) / np.linalg.norm(table[:len(train_ids)], axis=1)
    report = {"warm_items": len(warm), "new_items": len(new), "checked_rows": len(train_ids),
              "check_cosine_to_cached_table_min": float(cos.min())}
    if cos.min() < 0.9999:
        bad = [train_ids[k] for k in np.argsort(cos)[:5]]
        sys.exit(f"cold_vectors.py: vectors differ from the cached table (min cosine {cos.min():.5f}; items {bad})")

    def words(i):
        return [w for w in items[i]["title"].split(" ") if w]

    def tokens_per_word(group):
        t = sum(len(bpe.encode(" " + " ".join(words(i)))) for i in group)
        return t / max(1, sum(len(words(i)) for i in group))

    g = {i: set(items[i]["genres"]) for i in ids}
    gw, gn = [g[i] for i in warm], [g[i] for i in new]
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, len(ids), size=(20000, 2))
    report["title_tokens_per_word"] = {"new": tokens_per_word(new), "warm": tokens_per_word(warm)}
    same = np.sum(warm_vec * warm_as_new, axis=1)
    report["warm_cos_stats_vs_new_prompt"] = {"mean": float(same.mean()), "min": float(same.min()),
                                              "median": float(np.median(same))}
    nn = {}
    for name, q, gq, excl in [("new", new_vec, gn, False), ("warm_rendered_new", warm_as_new, gw, False),
                              ("warm", warm_vec, gw, True)]:
        best, share = neighbours(q, warm_vec, gq, gw, exclude_self=excl)
        nn[name] = {"nearest_warm_cosine_mean": best, "top10_share_sharing_a_genre": share}
    nn["random_pairs_sharing_a_genre"] = float(np.mean([bool(g[ids[x]] & g[ids[y]]) for x, y in pairs if x != y]))
    report["neighbours"] = nn

    def mean_pair(v):
        s = v @ v.T
        return float((s.sum() - np.trace(s)) / (len(v) * (len(v) - 1)))

    report["mean_pair_cosine"] = {"new": mean_pair(new_vec), "warm": mean_pair(warm_vec),
                                  "warm_rendered_new": mean_pair(warm_as_new)}
    print(json.dumps(report, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
