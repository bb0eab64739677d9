"""Text quality of the rationale targets themselves (issue 16 part 3): what the `rationale` stage teaches.

Rebuilds, independently of the Swift code, the rationale of every user's leave-one-out test history (all but the
last interaction, stable-sorted by timestamp; the last 20 shown) by the rules of Sources/Data/Rationale.swift, and
measures it as `r2ec eval --reasoning` measures chains (Eval.ReasoningQuality): distinct-2 (distinct word bigrams /
word bigrams over all texts; within one text as a
contrast), repetition-4 (per text 1 - distinct word 4-grams / 4-grams, averaged), quoted
titles. A reasoning path that copies its targets perfectly scores these figures.

    python3 benchmarks/rationale_targets.py data/ml-100k [--recent 2] [--genres 3]

`--titles N --order recent|rarest|rated` measures instead a text of N of the history's own titles and nothing else
(the most recent, the least popular over all shown histories, or the best rated first): how far distinct-2 can go
with text made only of titles that exist and that the user has seen.
"""
import argparse
import collections
import csv
import json
import os
import sys

SHOWN = 20


def read_atomic(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [h.split(":")[0] for h in rows[0]]
    return [dict(zip(header, r)) for r in rows[1:] if r]


def rationale(lines, items, recent, genres):
    """lines: the shown (item id, rating) pairs, oldest first."""
    def title(i):
        t, y = items[i]["title"] or i, items[i]["year"]
        return f"{t} ({y})" if y > 0 else t
    if not lines:
        return ""
    parts = []
    rec = list(reversed(lines))[:recent]
    if rec:
        parts.append("Recent: " + ", ".join(f"[{title(i)}]" for i, _ in rec) + ".")
    quoted = {i for i, _ in rec}
    liked = None
    for i, r in reversed(lines):           # most recent first; a later (older) line wins only if rated higher
        if i in quoted:
            continue
        if liked is None or r > liked[1]:
            liked = (i, r)
    if liked:
        parts.append(f"Liked: [{title(liked[0])}].")
    count, last = collections.Counter(), {}
    for pos, (i, _) in enumerate(lines):
        for g in set(items[i]["genres"]):
            count[g] += 1
            last[g] = pos
    shared = [g for g in count if count[g] >= 2]
    # count desc, then most recent appearance desc, then name asc
    shared.sort(key=lambda g: (-count[g], -last[g], g))
    if not shared and items[lines[-1][0]]["genres"]:
        shared = [items[lines[-1][0]]["genres"][0]]
    if shared:
        parts.append("Genres: " + ", ".join(shared[:max(1, genres)]) + ".")
    return " ".join(parts)


def titles_only(lines, items, n, order, popularity):
    """N of the shown titles, quoted, in the given order; nothing else."""
    def title(i):
        t, y = items[i]["title"] or i, items[i]["year"]
        return f"{t} ({y})" if y > 0 else t
    ranked = list(reversed(lines))                         # most recent first; stable sorts keep it as a tie-break
    if order == "rarest":
        ranked.sort(key=lambda line: popularity[line[0]])
    elif order == "rated":
        ranked.sort(key=lambda line: -line[1])
    return " ".join(f"[{title(i)}]" for i, _ in ranked[:n])


def quality(texts):
    bigrams, n_bi, rep, n_rep, quoted, own, n_own = set(), 0, 0.0, 0, 0, 0.0, 0
    for t in texts:
        w = t.split()
        quoted += t.count("]")
        if len(w) >= 2:
            bigrams.update(zip(w, w[1:]))
            n_bi += len(w) - 1
            own += len(set(zip(w, w[1:]))) / (len(w) - 1)
            n_own += 1
        if len(w) >= 4:
            grams = {tuple(w[i:i + 4]) for i in range(len(w) - 3)}
            rep += 1 - len(grams) / (len(w) - 3)
            n_rep += 1
    return {"texts": len(texts), "quoted_titles": quoted, "distinct2": len(bigrams) / n_bi if n_bi else None,
            "distinct2_within_text": own / n_own if n_own else None,
            "repetition4": rep / n_rep if n_rep else None,
            "mean_words": sum(len(t.split()) for t in texts) / max(1, len(texts))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("--recent", type=int, default=2)
    ap.add_argument("--genres", type=int, default=3)
    ap.add_argument("--titles", type=int, default=0, help="measure N titles only instead of the rationale")
    ap.add_argument("--order", choices=["recent", "rarest", "rated"], default="recent")
    a = ap.parse_args()
    name = os.path.basename(os.path.normpath(a.dataset))
    items = {}
    for r in read_atomic(os.path.join(a.dataset, name + ".item")):
        year = r.get("release_year", "")
        items[r["item_id"]] = {"title": r.get("movie_title", ""), "year": int(year) if year.isdigit() else 0,
                               "genres": r.get("class", "").split()}
    users = collections.defaultdict(list)
    for pos, r in enumerate(read_atomic(os.path.join(a.dataset, name + ".inter"))):
        users[r["user_id"]].append((float(r["timestamp"]), pos, r["item_id"], float(r["rating"])))
    shown = []
    for u, seq in users.items():
        seq.sort(key=lambda x: (x[0], x[1]))
        if len(seq) < 3:
            continue
        history = [(i, r) for _, _, i, r in seq[:-1]]      # test sample: everything before the last interaction
        shown.append(history[-SHOWN:])
    if a.titles > 0:
        popularity = collections.Counter(i for lines in shown for i, _ in lines)
        texts = [titles_only(lines, items, a.titles, a.order, popularity) for lines in shown]
    else:
        texts = [rationale(lines, items, a.recent, a.genres) for lines in shown]
    out = quality(texts)
    out["example"] = texts[0]
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
