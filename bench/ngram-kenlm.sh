#!/usr/bin/env bash
# jielong ngram vs KenLM on the Shakespeare plays (scripts/fetch-data): a 5-gram modified
# Kneser-Ney model built by both on the same text, perplexity of held-out plays, build time,
# peak memory, and query speed against KenLM's probing binary. Results go to BENCHMARKS.md by hand.
#
# Usage: bench/ngram-kenlm.sh KENLM_BUILD_DIR [REPEATS]
#   KENLM_BUILD_DIR from bench/build-kenlm.sh (holds bin/lmplz, bin/query, bin/build_binary)
# Needs: target/release/jielong (cargo build --release), data/shakespeare, /usr/bin/time.
#
# Both tools get identical input: every line of the plays with its words re-joined by single
# spaces and blank lines dropped (KenLM counts a blank line as an empty sentence), so
# `--units space` (split on whitespace, one sentence per line) sees exactly KenLM's tokens.
# Held out: hamlet, macbeth, tempest. The test text is repeated 20 times for the speed runs so
# that loading is a small part of the time.
set -euo pipefail
kenlm=${1:?usage: bench/ngram-kenlm.sh KENLM_BUILD_DIR [REPEATS]}
repeats=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
jl="$root/target/release/jielong"
work=$(mktemp -d /tmp/ngram-bench.XXXXXX)
held="hamlet_gut.txt macbeth_gut.txt tempest_gut.txt"
python3 - "$root/data/shakespeare" "$work" $held <<'PY'
import os, sys
src, out, held = sys.argv[1], sys.argv[2], set(sys.argv[3:])
def clean(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            toks = line.split()
            if toks:
                yield " ".join(toks) + "\n"
with open(f"{out}/train.txt", "w") as tr, open(f"{out}/test.txt", "w") as te:
    for name in sorted(os.listdir(src)):
        if name.endswith(".txt"):
            (te if name in held else tr).writelines(clean(os.path.join(src, name)))
test = open(f"{out}/test.txt").read()
open(f"{out}/test20.txt", "w").write(test * 20)
PY
echo "work dir: $work"
echo "train: $(wc -lw <"$work/train.txt") lines/words · test: $(wc -lw <"$work/test.txt") lines/words"
echo "KenLM commit: $(cat "$kenlm/KENLM_COMMIT" 2>/dev/null || echo unknown)"

tv() { /usr/bin/time -v "$@" 2>"$work/time.txt" >"$work/out.txt"; awk -F': ' '/Elapsed \(wall clock\)/{w=$2} /Maximum resident/{m=$2} END{printf "%s s-or-m:s  %.1f MiB", w, m/1024}' "$work/time.txt"; }

for i in $(seq "$repeats"); do
  echo "run $i"
  echo "  lmplz build:    $(tv "$kenlm/bin/lmplz" -o 5 --text "$work/train.txt" --arpa "$work/kenlm.arpa")"
  echo "  jielong build:  $(tv "$jl" ngram train --order 5 --units space --out "$work/jl.jlng" "$work/train.txt")"
done
"$kenlm/bin/build_binary" probing "$work/kenlm.arpa" "$work/kenlm.probing" >/dev/null 2>&1
"$jl" ngram import --arpa "$work/kenlm.arpa" --units space --out "$work/kenlm-in-jl.jlng" >/dev/null
echo "perplexity on held-out plays:"
"$kenlm/bin/query" -v summary "$work/kenlm.probing" <"$work/test.txt" 2>/dev/null | grep -E "Perplexity|OOVs|Tokens"
"$jl" ngram eval --model "$work/jl.jlng" --text "$work/test.txt" --json
"$jl" ngram eval --model "$work/kenlm-in-jl.jlng" --text "$work/test.txt" --json
echo "file sizes: $(du -h "$work/kenlm.arpa" "$work/kenlm.probing" "$work/jl.jlng" | tr '\n' ' ')"
for i in $(seq "$repeats"); do
  echo "query run $i (test text ×20, whole process)"
  echo "  KenLM query probing:  $(tv "$kenlm/bin/query" -v summary "$work/kenlm.probing" <"$work/test20.txt")"
  echo "  jielong ngram eval:   $(tv "$jl" ngram eval --model "$work/jl.jlng" --text "$work/test20.txt" --json)  $(grep -o '"tokens":[0-9]*\|"tokens_per_second":[0-9.]*\|"load_ms":[0-9.]*' "$work/out.txt" | tr '\n' ' ')"
done
