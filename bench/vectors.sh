#!/usr/bin/env bash
# Word vectors, jielong vs gensim 4.4.0, side by side on the same words and threads.
#
#   bench/vectors.sh [SEEDS] [THREADS] [CORPUS]      (default: "1 2 3", 2, data/shakespeare)
#
# CORPUS: files or a folder of text; the Wikipedia excerpt is made by bench/wiki_text.py
# (target/bench-wiki/wiki.txt). Outputs go to target/bench-vectors (Shakespeare) or
# target/bench-vectors-<name of CORPUS>.
#
# Needs: `cargo build --release`, scripts/fetch-data, and gensim in .venv-bench
# (python3 -m venv .venv-bench && .venv-bench/bin/pip install gensim==4.4.0).
# The corpus is every Shakespeare play and poem in data/shakespeare, lowercased, cut into words
# by jielong once (`--save-corpus`); both tools then read that same file (one sentence a line).
# METHODS="cbow" (say) runs only some methods. For each seed, the methods run alternately (jielong, then gensim) so that a busy host slows
# both alike. Prints one JSON line per run; bench/vectors_summary.py makes the medians table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SEEDS="${1:-1 2 3}"
THREADS="${2:-2}"
CORPUS="${3:-data/shakespeare}"
PY=.venv-bench/bin/python
J="${J:-target/release/jielong}"
OUT=target/bench-vectors
[[ $CORPUS == data/shakespeare ]] || OUT="target/bench-vectors-$(basename "${CORPUS%.*}")"
mkdir -p "$OUT"
COMMON=(--dim 100 --window 5 --min-count 5 --negative 5 --sample 1e-3 --epochs 5 --threads "$THREADS")

# The words both tools read.
"$J" vectors train --method skipgram --lowercase --epochs 1 --dim 10 --threads "$THREADS" \
    --save-corpus "$OUT/corpus.txt" --out "$OUT/warmup" "$CORPUS" >/dev/null
echo "corpus: $(wc -w <"$OUT/corpus.txt") words, $(wc -l <"$OUT/corpus.txt") lines" >&2

for seed in $SEEDS; do
  for method in ${METHODS:-skipgram cbow fasttext}; do
    extra=()
    [[ $method == fasttext ]] && extra=(--alpha 0.025)
    "$J" vectors train --method "$method" "${COMMON[@]}" "${extra[@]}" --seed "$seed" \
        --out "$OUT/$method-$seed" "$OUT/corpus.txt" >/dev/null
    "$J" vectors eval --vectors "$OUT/$method-$seed" --json >"$OUT/$method-$seed.eval.json"
    "$PY" - "$OUT/$method-$seed" "$method" "$seed" <<'PY'
import json, sys
d, method, seed = sys.argv[1:]
m = json.load(open(f"{d}/meta.json")); e = json.load(open(f"{d}.eval.json"))
print(json.dumps({"tool": "jielong", "method": method, "seed": int(seed), "threads": m["threads"],
    "words_per_second": m["words_per_second"], "train_seconds": m["train_seconds"], "vocab": m["vocab_size"],
    "analogy": e["analogies"]["accuracy"], "wordsim353": e["pairs"][0]["spearman"], "simlex999": e["pairs"][1]["spearman"],
    "ws_oov": 100 * e["pairs"][0]["oov_ratio"]}))
PY
    "$PY" bench/vectors_gensim.py --method "$method" --corpus "$OUT/corpus.txt" --dim 100 --window 5 \
        --min-count 5 --negative 5 --sample 1e-3 --epochs 5 --threads "$THREADS" --alpha 0.025 --seed "$seed"
  done
done
