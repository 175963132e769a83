#!/usr/bin/env bash
# Peak memory of `jielong data clean` (MinHash dedup only) as the input grows 4×:
#
#   bench/pipeline_memory.sh [JIELONG]        (default target/release/jielong)
#
# Writes synthetic JSONL of made-up words (200,000 and 800,000 documents of 60 words; every
# tenth document a copy of the one before with two words changed) under target/bench-pipeline-mem
# and prints wall seconds and peak resident memory (GNU time) for each size.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
J="${1:-target/release/jielong}"
OUT=target/bench-pipeline-mem
mkdir -p "$OUT"
for n in 200000 800000; do
  [[ -f $OUT/docs-$n.jsonl ]] || python3 - "$n" "$OUT/docs-$n.jsonl" <<'PY'
import json, random, sys
n = int(sys.argv[1]); rng = random.Random(7)
syl = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "zu", "an", "el", "or", "ix", "um"]
vocab = ["".join(rng.choice(syl) for _ in range(rng.randint(1, 4))) for _ in range(20000)]
with open(sys.argv[2], "w") as f:
    base = None
    for i in range(n):
        if i % 10 == 5 and base is not None:
            words = base[:]
            for _ in range(2):
                words[rng.randrange(len(words))] = rng.choice(vocab)
        else:
            words = [rng.choice(vocab) for _ in range(60)]
        base = words
        f.write(json.dumps({"text": " ".join(words) + "."}) + "\n")
PY
  rm -rf "$OUT/clean-$n"
  /usr/bin/time -f "$n documents: %e s wall, %M KB peak" "$J" data clean --pipeline bench/pipeline-dedup.toml \
      --out "$OUT/clean-$n" "$OUT/docs-$n.jsonl" 2>&1 | grep -E "documents →|documents:"
done
