#!/usr/bin/env python3
"""Lexical retrieval benchmark: `jielong lexical` against the Python tools a user would pick,
on the same passages of the Shakespeare plays (scripts/fetch-data) and the same queries.

- BM25: jielong (tantivy postings, exact-length textbook BM25, k1 1.2, b 0.75) vs bm25s
  (method "lucene", same k1 and b, its numpy and numba backends, one thread; it leaves out Lucene's old (k1 + 1) factor, so its scores are
  ours / 2.2 and rank identically) and rank_bm25's BM25Okapi (its idf differs: ln((N - n + 0.5)
  / (n + 0.5)) with negative values floored to 0.25 x the mean idf).
- TF-IDF: jielong --scheme tfidf (raw tf) vs scikit-learn TfidfVectorizer + a sparse dot product.

Passages are the plays cut at blank lines (as `--split paragraphs` does), written once as JSONL
that every side reads. Queries: a few famous lines plus 2-4 consecutive words of randomly chosen
passages (seeded). The Python side tokenizes with the regex \\w+(?:'\\w+)* lowercased, the
nearest thing to Unicode word boundaries (jielong's analysis); top-10 agreement shows what the
small differences (e.g. "'tis") leave.

Rounds alternate the programs (a shared, busy machine hits all of them alike); medians reported.
Build: wall time of `jielong lexical index` (process start, reading, analysis, writing) vs the
Python tokenization + index construction in-process (interpreter start and imports excluded).
Queries/s: the query loop only (jielong reports its own from `search --queries`; the index is
already open on both sides); rank_bm25 runs the first 100 queries only (it is slow).

Usage: .venv-bench/bin/pip install rank_bm25 bm25s numba scikit-learn
       cargo build --release && .venv-bench/bin/python bench/lexical.py [--rounds 3]
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "bench-lexical")
TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*")
FAMOUS = [
    "to be or not to be", "the rest is silence", "a horse a horse my kingdom for a horse",
    "now is the winter of our discontent", "out damned spot", "all the world's a stage",
    "the quality of mercy is not strained", "friends romans countrymen lend me your ears",
    "parting is such sweet sorrow", "something is rotten in the state of denmark",
    "we few we happy few we band of brothers", "if music be the food of love play on",
    "the course of true love never did run smooth", "lord what fools these mortals be",
    "brevity is the soul of wit", "uneasy lies the head that wears a crown",
]


def tokenize(text):
    return TOKEN.findall(text.lower())


def prepare(n_queries, seed):
    os.makedirs(WORK, exist_ok=True)
    data = os.path.join(ROOT, "data", "shakespeare")
    passages = []
    for name in sorted(os.listdir(data)):
        if not name.endswith(".txt"):
            continue
        text = open(os.path.join(data, name), encoding="utf-8", errors="replace").read()
        for i, p in enumerate(p for p in re.split(r"\n[ \t\r]*\n", text) if p.strip()):
            passages.append({"id": f"{name[:-8]}#{i + 1}", "text": p.strip()})
    with open(os.path.join(WORK, "passages.jsonl"), "w", encoding="utf-8") as f:
        for p in passages:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    rng = random.Random(seed)
    queries = list(FAMOUS)
    long_ones = [p for p in passages if len(tokenize(p["text"])) >= 12]
    while len(queries) < n_queries:
        words = tokenize(rng.choice(long_ones)["text"])
        n = rng.randint(2, 4)
        at = rng.randrange(len(words) - n)
        queries.append(" ".join(words[at : at + n]))
    with open(os.path.join(WORK, "queries.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(queries) + "\n")
    return passages, queries


def run_jielong(binary, scheme, queries_file):
    out = os.path.join(WORK, f"idx-{scheme}")
    t0 = time.perf_counter()
    subprocess.run([binary, "lexical", "index", "--scheme", scheme, "--out", out, os.path.join(WORK, "passages.jsonl")],
                   check=True, stdout=subprocess.DEVNULL)
    build = time.perf_counter() - t0
    r = subprocess.run([binary, "lexical", "search", "--index", out, "--queries", queries_file, "--k", "10"],
                       check=True, capture_output=True, text=True)
    m = re.search(r"(\d+) queries in ([0-9.]+) s", r.stderr)
    qps = int(m.group(1)) / float(m.group(2))
    top = [[(d, s) for d, s in json.loads(line)["results"]] for line in r.stdout.splitlines()]
    return build, qps, top


def run_bm25s(passages, queries, backend):
    import bm25s

    t0 = time.perf_counter()
    retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75, backend=backend)
    retriever.index([tokenize(p["text"]) for p in passages], show_progress=False)
    build = time.perf_counter() - t0
    vocab = retriever.vocab_dict
    qtok = [[t for t in tokenize(q) if t in vocab] or [""] for q in queries]
    t0 = time.perf_counter()
    if backend == "numba":  # compile once, outside the timed loop
        retriever.retrieve(qtok[:2], k=10, show_progress=False, n_threads=1)
        t0 = time.perf_counter()
    docs, scores = retriever.retrieve(qtok, k=10, show_progress=False, n_threads=1)
    qps = len(queries) / (time.perf_counter() - t0)
    top = [[(passages[d]["id"], float(s) * 2.2) for d, s in zip(dr, sr) if s > 0] for dr, sr in zip(docs, scores)]
    return build, qps, top


def run_rank_bm25(passages, queries):
    import numpy as np
    from rank_bm25 import BM25Okapi

    t0 = time.perf_counter()
    bm = BM25Okapi([tokenize(p["text"]) for p in passages], k1=1.2, b=0.75)
    build = time.perf_counter() - t0
    qs = queries[:100]
    t0 = time.perf_counter()
    top = []
    for q in qs:
        s = bm.get_scores(tokenize(q))
        best = np.argsort(-s, kind="stable")[:10]
        top.append([(passages[i]["id"], float(s[i])) for i in best if s[i] > 0])
    qps = len(qs) / (time.perf_counter() - t0)
    return build, qps, top


def run_sklearn(passages, queries):
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    t0 = time.perf_counter()
    vec = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None, smooth_idf=True, norm="l2")
    x = vec.fit_transform([p["text"] for p in passages])
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    sims = (vec.transform(queries) @ x.T).tocsr()
    top = []
    for i in range(len(queries)):
        row = sims.getrow(i)
        order = np.lexsort((row.indices, -row.data))[:10]
        top.append([(passages[row.indices[j]]["id"], float(row.data[j])) for j in order])
    qps = len(queries) / (time.perf_counter() - t0)
    return build, qps, top


def agreement(ours, ref):
    """Mean overlap of the top-10 sets, share of equal top-1, and share of queries whose sorted
    top-10 scores agree within 1e-4 (relative): equal scoring even where ties are ordered apart."""
    overlap, first, scores = [], [], []
    for a, b in zip(ours, ref):
        sa, sb = {d for d, _ in a}, {d for d, _ in b}
        overlap.append(len(sa & sb) / max(len(sa), len(sb), 1))
        first.append((a[:1] and b[:1] and a[0][0] == b[0][0]) or (not a and not b))
        va, vb = sorted((s for _, s in a), reverse=True), sorted((s for _, s in b), reverse=True)
        scores.append(len(va) == len(vb) and all(abs(x - y) <= 1e-4 * max(abs(y), 1e-9) for x, y in zip(va, vb)))
    n = len(ref)
    return sum(overlap) / n, sum(map(bool, first)) / n, sum(scores) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--jielong", default=os.path.join(ROOT, "target", "release", "jielong"))
    args = ap.parse_args()
    passages, queries = prepare(args.queries, seed=14)
    qfile = os.path.join(WORK, "queries.txt")
    import bm25s, numba, rank_bm25, sklearn  # noqa: E401  (versions)

    print(f"{len(passages)} passages, {sum(len(tokenize(p['text'])) for p in passages)} words, {len(queries)} queries; "
          f"python {sys.version.split()[0]}, bm25s {bm25s.__version__}, numba {numba.__version__}, rank_bm25 {getattr(rank_bm25, '__version__', '0.2.2')}, "
          f"scikit-learn {sklearn.__version__}, {os.cpu_count()} CPUs", flush=True)
    sides = {
        "jielong bm25": lambda: run_jielong(args.jielong, "bm25", qfile),
        "bm25s (lucene, numpy)": lambda: run_bm25s(passages, queries, "numpy"),
        "bm25s (lucene, numba)": lambda: run_bm25s(passages, queries, "numba"),
        "rank_bm25 BM25Okapi": lambda: run_rank_bm25(passages, queries),
        "jielong tfidf": lambda: run_jielong(args.jielong, "tfidf", qfile),
        "scikit-learn tfidf": lambda: run_sklearn(passages, queries),
    }
    times = {k: ([], []) for k in sides}
    tops = {}
    for r in range(args.rounds):
        for name, fn in sides.items():
            build, qps, top = fn()
            times[name][0].append(build)
            times[name][1].append(qps)
            tops[name] = top
            print(f"round {r + 1} {name}: build {build:.2f} s, {qps:.0f} queries/s", flush=True)
    med = {k: (statistics.median(b), statistics.median(q)) for k, (b, q) in times.items()}
    print("\n| side | build (s, median) | queries/s (median) | jielong build speed-up | jielong query speed-up | top-10 overlap | same top-1 | top-10 scores equal |")
    print("|---|---|---|---|---|---|---|---|")
    for name, ours in [("bm25s (lucene, numpy)", "jielong bm25"), ("bm25s (lucene, numba)", "jielong bm25"), ("rank_bm25 BM25Okapi", "jielong bm25"), ("scikit-learn tfidf", "jielong tfidf")]:
        ov, t1, se = agreement(tops[ours][: len(tops[name])], tops[name])
        print(f"| {ours} | {med[ours][0]:.2f} | {med[ours][1]:.0f} | | | | | |")
        print(f"| {name} | {med[name][0]:.2f} | {med[name][1]:.0f} | {med[name][0] / med[ours][0]:.2f}x | "
              f"{med[ours][1] / med[name][1]:.2f}x | {ov:.3f} | {t1:.3f} | {se:.3f} |")


if __name__ == "__main__":
    main()
