"""`jielong bench embed` vs sentence-transformers on all-MiniLM-L6-v2: sentences per second at
batch 1 and 32, short (about 12 tokens) and long (about 128 tokens) inputs, same texts, same
threads, alternating the two programs, medians of the rounds.

    scripts/fetch-data && cargo build --release
    target/release/jielong import --from data/minilm --out runs/minilm
    .venv-bench/bin/python bench/embed_minilm.py [--rounds 5] [--threads 2]

Needs torch and sentence-transformers (bench/requirements.txt; measured with torch 2.15.0,
sentence-transformers 6.3.0). Both sides embed the same generated texts (`texts` here builds the
strings `jielong bench embed` builds) in batches of the same size, tokenization included, after
a warm-up batch: jielong's figure is the `texts_per_s` that `jielong bench embed --json` prints
for one round, sentence-transformers' is `model.encode` over the same list.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("the river starts high in the mountains where snow melts slowly through spring and early "
         "summer gathering small streams as it falls through pine forests narrow gorges and wide "
         "green valleys farmers along its banks have used its water for centuries building "
         "terraces mills and little wooden bridges every village keeps its own stories").split()


def texts(n: int, words: int) -> list[str]:
    """The strings of `jielong bench embed` (crates/jielong-cli/src/cmd/bench_embed.rs)."""
    out = []
    for i in range(n):
        ws = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(words)]
        out.append(" ".join(ws).capitalize() + f" ({i}).")
    return out


# Words per text for each length (as bench_embed.rs): about 12 and 128 MiniLM tokens.
LENGTHS = {"short": 6, "long": 118}


def run_jielong(binary: str, ckpt: str, name: str, batch: int, batches: int, threads: int) -> dict:
    out = subprocess.run([binary, "bench", "embed", "--checkpoint", ckpt, "--batch", str(batch), "--lengths", name,
                          "--batches", str(batches), "--threads", str(threads), "--rounds", "1", "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    batches = {1: 16, 32: 4}  # texts per cell: 16 at batch 1, 128 at batch 32
    results = []
    for name in ("short", "long"):
        for batch in (1, 32):
            n = max(batch * batches[batch], 16)
            ts = texts(n, LENGTHS[name])
            toks = sum(len(model.tokenizer(t)["input_ids"]) for t in ts) / n
            model.encode(ts[:batch], batch_size=batch)  # warm-up
            ours, theirs = [], []
            for _ in range(a.rounds):
                row = run_jielong(a.binary, a.checkpoint, name, batch, batches[batch], a.threads)
                assert row["texts"] == n and abs(row["mean_tokens"] - toks) < 0.11, (row, toks)
                ours.append(row["texts_per_s"])
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
