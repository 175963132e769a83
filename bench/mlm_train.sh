#!/usr/bin/env bash
# BERT masked-LM training throughput: `jielong train` (family bert, objective mlm) against
# Hugging Face `BertForMaskedLM` (eager attention, bench/hf_bert_mlm.py; both its out-of-the-box
# AdamW and a tuned run with fused AdamW and denormals flushed) at the same shapes,
# batch, sequence length, optimizer settings and threads, alternating ROUNDS times so a slow
# spell of a shared host hits both. Prints each run's tokens/s, the medians and the ratio.
#
# Usage: bench/mlm_train.sh [PRESET] [THREADS] [ROUNDS]      (defaults: small 2 3)
#   PRESET  small  (4 layers, 4 heads, 256 wide, seq 128, vocab 4096, batch 32)
#           medium (6 layers, 6 heads, 384 wide, seq 256, vocab 8192, batch 8)
#           (the batches of `jielong bench train --preset`)
#   env STEPS (default 24: steps per run), WARMUP (default 4: first steps not counted),
#       JIELONG (default target/release/jielong), PY (default /work/main/.venv-bench/bin/python,
#       which needs torch 2.15 and transformers 5.23: pip install torch==2.15.0 transformers==5.23.0)
#
# Corpus: the handbook (docs/handbook/en + zh) and, when scripts/fetch-data has run,
# data/shakespeare; a wordpiece tokenizer with exactly the preset's vocabulary is trained on it.
# Tokens counted on both sides: batch × seq_len per step (every position, masked or not), as
# `jielong train` counts them; jielong's figure is taken from its per-step `tokens_per_s`
# in metrics.jsonl (steps after WARMUP: their tokens over their summed step times).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset="${1:-small}"
threads="${2:-2}"
rounds="${3:-3}"
steps="${STEPS:-24}"
warmup="${WARMUP:-4}"
jl="${JIELONG:-target/release/jielong}"
py="${PY:-/work/main/.venv-bench/bin/python}"
case "$preset" in
  small) layers=4 heads=4 width=256 seq=128 vocab=4096 batch=32 ;;
  medium) layers=6 heads=6 width=384 seq=256 vocab=8192 batch=8 ;;
  *) echo "mlm_train.sh: unknown preset '$preset': use small or medium" >&2; exit 2 ;;
esac
if ! [[ "$threads" =~ ^[1-9][0-9]*$ && "$rounds" =~ ^[1-9][0-9]*$ && "$steps" =~ ^[1-9][0-9]*$ ]] || (( warmup >= steps )); then
  echo "mlm_train.sh: THREADS, ROUNDS and STEPS must be positive whole numbers and WARMUP < STEPS" >&2
  exit 2
fi
[ -x "$jl" ] || { echo "mlm_train.sh: $jl not found: cargo build --release first" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
inputs=(docs/handbook/en docs/handbook/zh)
[ -d data/shakespeare ] && inputs+=(data/shakespeare)
"$jl" tokenizer train --kind wordpiece --vocab-size "$vocab" --out "$work/tok" "${inputs[@]}" >/dev/null
"$jl" data prepare --tokenizer "$work/tok" --out "$work/shards" "${inputs[@]}" >/dev/null
got=$(( $(wc -l <"$work/tok/vocab.txt") - 1 ))  # vocab.txt: a header line, then one id a line
if [ "$got" != "$vocab" ]; then
  echo "mlm_train.sh: the wordpiece vocabulary has $got entries, not $vocab: the corpus is too small" >&2
  exit 1
fi
mask_id=$(awk -F'\t' '$2 == "[MASK]" { print $1 }' "$work/tok/vocab.txt")
cat >"$work/c.toml" <<EOF
[data]
dir = "$work/shards"
[model]
family = "bert"
vocab_size = $vocab
n_layer = $layers
n_head = $heads
n_embd = $width
max_seq_len = $seq
dropout = 0.0
[train]
objective = "mlm"
batch_size = $batch
max_steps = $steps
eval_interval = $steps
eval_windows = 8
checkpoint_interval = $steps
EOF
echo "shapes (both): bert $preset: $layers layers, $heads heads, hidden $width, intermediate $((4 * width)), positions $seq, vocab $vocab, batch $batch × seq $seq = $((batch * seq)) tokens/step; $threads threads; $steps steps, first $warmup not counted; [MASK] = id $mask_id"
export RAYON_NUM_THREADS="$threads"
jl_tps=() hf_tps=() hft_tps=()
for r in $(seq "$rounds"); do
  rm -rf "$work/run"
  "$jl" train --config "$work/c.toml" --out "$work/run" >"$work/train.log" 2>&1 || { cat "$work/train.log" >&2; exit 1; }
  t=$("$py" - "$work/run/metrics.jsonl" "$warmup" "$((batch * seq))" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if r.get("tokens_per_s")][int(sys.argv[2]):]
tok = int(sys.argv[3])
print(round(tok * len(rows) / sum(tok / r["tokens_per_s"] for r in rows), 1))
EOF
)
  jl_tps+=("$t")
  echo "round $r jielong: $t tok/s"
  for tuned in "" "--adamw fused --flush-denormal"; do
    # shellcheck disable=SC2086
    line=$("$py" bench/hf_bert_mlm.py --preset "$preset" --batch "$batch" --seq "$seq" --vocab "$vocab" \
      --steps "$((steps - warmup))" --warmup "$warmup" --threads "$threads" $tuned 2>/dev/null)
    echo "round $r hf${tuned:+ (tuned)}: $line"
    t=$("$py" -c 'import json,sys; print(json.loads(sys.argv[1])["tokens_per_s"])' "$line")
    if [ -z "$tuned" ]; then hf_tps+=("$t"); else hft_tps+=("$t"); fi
  done
done
"$py" - "${jl_tps[*]}" "${hf_tps[*]}" "${hft_tps[*]}" <<'EOF'
import statistics, sys
jl, hf, hft = ([float(x) for x in a.split()] for a in sys.argv[1:4])
mj, mh, mt = statistics.median(jl), statistics.median(hf), statistics.median(hft)
print(f"jielong tok/s:                     {' · '.join(f'{x:,.0f}' for x in jl)}  median {mj:,.0f}")
print(f"HF eager, default AdamW tok/s:     {' · '.join(f'{x:,.0f}' for x in hf)}  median {mh:,.0f}")
print(f"HF eager, fused AdamW + FTZ tok/s: {' · '.join(f'{x:,.0f}' for x in hft)}  median {mt:,.0f}")
print(f"ratio jielong / HF default (medians): {mj / mh:.2f}x; jielong / HF tuned: {mj / mt:.2f}x  (target >= 1.2x)")
EOF
