#!/usr/bin/env bash
# GloVe, jielong vs the original C code (github.com/stanfordnlp/GloVe), side by side on the same
# words, hyperparameters and threads.
#
#   bench/vectors_glove_c.sh GLOVE_SRC [SEEDS] [THREADS]     (default: "1 2 3", 2)
#
# GLOVE_SRC: a checkout of stanfordnlp/GloVe; it is copied to target/glove-c/src and built there
# with its own Makefile (gcc -O3 -march=native), never inside the repository's sources.
# Needs `cargo build --release` and scripts/fetch-data (the analogy and similarity sets).
# The corpus is every Shakespeare play lowercased and cut into words by jielong once
# (`--save-corpus`, one sentence a line); both tools read that file. Same settings on both
# sides: vocabulary min-count 5, symmetric window 5 with 1/d weighting, 100 dimensions,
# x_max 100, α 0.75, η 0.05 (AdaGrad), 25 iterations, word + context vectors summed
# (glove -model 2). Timing is the wall clock of the whole pipeline (GloVe: vocab_count, cooccur,
# shuffle, glove; jielong: one `vectors train`, which also reads and cuts the text). Both
# tools' vectors are scored by `jielong vectors eval`, which gives gensim's figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SRC="${1:?usage: bench/vectors_glove_c.sh GLOVE_SRC [SEEDS] [THREADS]}"
SEEDS="${2:-1 2 3}"
THREADS="${3:-2}"
J=target/release/jielong
OUT=target/bench-glove
G=target/glove-c/src/build
mkdir -p "$OUT"
if [[ ! -x $G/glove ]]; then
  mkdir -p target/glove-c/src
  cp -r "$SRC"/. target/glove-c/src/
  make -C target/glove-c/src >/dev/null
fi
"$J" vectors train --method skipgram --lowercase --epochs 1 --dim 10 --threads "$THREADS" \
    --save-corpus "$OUT/corpus.txt" --out "$OUT/warmup" data/shakespeare >/dev/null
WORDS=$(wc -w <"$OUT/corpus.txt")
echo "corpus: $WORDS words, $(wc -l <"$OUT/corpus.txt") lines" >&2
now() { date +%s.%N; }
report() { # tool seed seconds vectors
  "$J" vectors eval --vectors "$4" --json >"$4.eval.json"
  python3 - "$1" "$2" "$3" "$4.eval.json" "$WORDS" <<'PY'
import json, sys
tool, seed, secs, ev, words = sys.argv[1:]
e = json.load(open(ev)); secs = float(secs)
print(json.dumps({"tool": tool, "method": "glove", "seed": int(seed), "seconds": round(secs, 2),
    "words_per_second": round(int(words) * 25 / secs), "analogy": e["analogies"]["accuracy"],
    "wordsim353": e["pairs"][0]["spearman"], "simlex999": e["pairs"][1]["spearman"]}))
PY
}
for seed in $SEEDS; do
  t0=$(now)
  "$J" vectors train --method glove --dim 100 --window 5 --min-count 5 --x-max 100 --glove-alpha 0.75 \
      --alpha 0.05 --epochs 25 --threads "$THREADS" --seed "$seed" --out "$OUT/jielong-$seed" "$OUT/corpus.txt" >/dev/null
  report jielong "$seed" "$(echo "$(now) - $t0" | bc)" "$OUT/jielong-$seed"

  d="$OUT/c-$seed"
  mkdir -p "$d"
  t0=$(now)
  "$G/vocab_count" -min-count 5 -verbose 0 <"$OUT/corpus.txt" >"$d/vocab.txt"
  "$G/cooccur" -memory 4.0 -vocab-file "$d/vocab.txt" -verbose 0 -window-size 5 -symmetric 1 \
      -distance-weighting 1 -overflow-file "$d/overflow" <"$OUT/corpus.txt" >"$d/cooccurrence.bin"
  "$G/shuffle" -memory 4.0 -verbose 0 -seed "$seed" -temp-file "$d/temp_shuffle" <"$d/cooccurrence.bin" >"$d/shuffled.bin"
  "$G/glove" -save-file "$d/vectors" -threads "$THREADS" -input-file "$d/shuffled.bin" -x-max 100 -alpha 0.75 \
      -eta 0.05 -iter 25 -vector-size 100 -binary 0 -model 2 -vocab-file "$d/vocab.txt" -verbose 0 -seed "$seed"
  secs=$(echo "$(now) - $t0" | bc)
  mv "$d/vectors.txt" "$d/vectors.glove.txt"
  report glove-c "$seed" "$secs" "$d"
done
