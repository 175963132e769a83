"""Medians of bench/vectors.sh's JSON lines: words/s, analogy accuracy, WordSim353 and
SimLex-999 rho per tool and method, and jielong's speed ratio over gensim.

  bench/vectors.sh | tee target/bench-vectors/runs.jsonl; python3 bench/vectors_summary.py target/bench-vectors/runs.jsonl
"""
import json
import statistics
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("| method | tool | runs | words/s (median) | analogy acc. | WordSim353 ρ | SimLex-999 ρ |")
print("| --- | --- | --- | --- | --- | --- | --- |")
speed = {}
for method in ["skipgram", "cbow", "fasttext"]:
    for tool in ["jielong", "gensim"]:
        r = [x for x in rows if x["method"] == method and x["tool"] == tool]
        if not r:
            continue
        med = lambda k: statistics.median(x[k] for x in r)
        rng = lambda k: f"{min(x[k] for x in r):.3f}–{max(x[k] for x in r):.3f}"
        speed[(method, tool)] = med("words_per_second")
        print(f"| {method} | {tool} | {len(r)} | {med('words_per_second'):,.0f} | {med('analogy'):.4f} ({rng('analogy')}) "
              f"| {med('wordsim353'):.3f} ({rng('wordsim353')}) | {med('simlex999'):.3f} ({rng('simlex999')}) |")
for method in ["skipgram", "cbow", "fasttext"]:
    if (method, "jielong") in speed and (method, "gensim") in speed:
        print(f"{method}: jielong / gensim words/s = {speed[(method, 'jielong')] / speed[(method, 'gensim')]:.2f}x")
