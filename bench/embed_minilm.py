"""`jielong embed` vs sentence-transformers on all-MiniLM-L6-v2: sentences per second at batch 1
and 32, short (about 12 tokens) and long (about 128 tokens) inputs, same threads, alternating
the two programs, medians of the rounds.

    scripts/fetch-data && cargo build --release
    target/release/jielong import --from data/minilm --out runs/minilm
    .venv-bench/bin/python bench/embed_minilm.py [--rounds 3] [--threads 2]

Needs torch and sentence-transformers (bench/requirements.txt; measured with torch 2.15.0,
sentence-transformers 6.3.0). jielong's figure is the texts/s it prints, timed from after the
model is loaded to the last vector (tokenization included); sentence-transformers' is
`model.encode` (tokenization included) after one warm-up call. The texts are written here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("the river starts high in the mountains where snow melts slowly through spring and early "
         "summer gathering small streams as it falls through pine forests narrow gorges and wide "
         "green valleys farmers along its banks have used its water for centuries building "
         "terraces mills and little wooden bridges every village keeps its own stories").split()


def texts(n: int, words: int) -> list[str]:
    out = []
    for i in range(n):
        ws = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(words)]
        out.append(" ".join(ws).capitalize() + f" ({i}).")
    return out


def run_jielong(binary: str, ckpt: str, path: Path, batch: int, threads: int) -> float:
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([binary, "embed", "--checkpoint", ckpt, "--batch-size", str(batch), str(path),
                          "--out", str(path.with_suffix(".npy"))], capture_output=True, text=True, env=env, check=True)
    return float(re.search(r"([0-9.]+) texts/s", out.stdout).group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--binary", default=str(ROOT / "target/release/jielong"))
    ap.add_argument("--checkpoint", default=str(ROOT / "runs/minilm"))
    a = ap.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(a.threads)
    model = SentenceTransformer(str(ROOT / "data/minilm"), device="cpu")
    cells = [("short", 11, 1, 48), ("short", 11, 32, 512), ("long", 115, 1, 16), ("long", 115, 32, 128)]
    tmp = Path(tempfile.mkdtemp())
    results = []
    for name, words, batch, n in cells:
        ts = texts(n, words)
        path = tmp / f"{name}-{batch}.txt"
        path.write_text("\n".join(ts) + "\n")
        toks = sum(len(model.tokenizer(t)["input_ids"]) for t in ts) / n
        model.encode(ts[:batch], batch_size=batch)  # warm-up
        ours, theirs = [], []
        for _ in range(a.rounds):
            ours.append(run_jielong(a.binary, a.checkpoint, path, batch, a.threads))
            t0 = time.perf_counter()
            model.encode(ts, batch_size=batch)
            theirs.append(n / (time.perf_counter() - t0))
        o, t = statistics.median(ours), statistics.median(theirs)
        row = {"inputs": name, "mean_tokens": round(toks, 1), "batch": batch, "texts": n,
               "jielong_texts_per_s": round(o, 1), "sentence_transformers_texts_per_s": round(t, 1),
               "ratio": round(o / t, 2), "rounds_jielong": ours, "rounds_st": [round(x, 1) for x in theirs]}
        print(json.dumps(row), flush=True)
        results.append(row)
    print("\n| inputs | tokens | batch | jielong texts/s | sentence-transformers texts/s | ratio |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['inputs']} | {r['mean_tokens']} | {r['batch']} | {r['jielong_texts_per_s']} | "
              f"{r['sentence_transformers_texts_per_s']} | {r['ratio']}× |")


if __name__ == "__main__":
    main()
