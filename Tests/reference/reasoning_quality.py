"""Independent reference for Eval's ReasoningQuality: reads {"chains", "histories", "catalogue"} as JSON on stdin,
writes the metrics as JSON. Quoted titles by regular expression (a "[" then no bracket or newline up to "]"),
words by str.split(), n-grams by zip."""
import json
import re
import sys

req = json.load(sys.stdin)
catalogue = set(req["catalogue"])
quoted = in_cat = in_hist = 0
bigrams, n_bigrams = set(), 0
rep, rep_chains, words_total = 0.0, 0, 0
for chain, history in zip(req["chains"], req["histories"]):
    for line in chain.split("\n"):
        for t in re.findall(r"\[([^\[\]\n]*)\]", line):
            t = t.strip(" ")
            quoted += 1
            in_cat += t in catalogue
            in_hist += t in set(history)
    w = chain.split()
    words_total += len(w)
    grams2 = list(zip(w, w[1:]))
    bigrams.update(grams2)
    n_bigrams += len(grams2)
    grams4 = list(zip(w, w[1:], w[2:], w[3:]))
    if grams4:
        rep += 1 - len(set(grams4)) / len(grams4)
        rep_chains += 1
out = {
    "quoted": quoted,
    "in_catalogue": in_cat / quoted if quoted else None,
    "in_history": in_hist / quoted if quoted else None,
    "distinct2": len(bigrams) / n_bigrams if n_bigrams else None,
    "repetition4": rep / rep_chains if rep_chains else None,
    "mean_words": words_total / len(req["chains"]) if req["chains"] else 0,
}
json.dump(out, sys.stdout)
