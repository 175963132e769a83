#!/usr/bin/env bash
# LoRA against full fine-tuning on the same base, jielong beside transformers (+ PEFT for LoRA):
# trainable share, peak RSS and training tokens/s, the programs alternated, ROUNDS rounds.
# Base: the MiniLM encoder fetched by scripts/fetch-data (BERT architecture, 6 layers, 384 wide,
# 22.7 M parameters); data: SpamAssassin ham/spam (`jielong data labelled`), 512 examples,
# one epoch, batch 16, at most 128 tokens, LoRA rank 8, alpha 16 on query and value.
#
#     bash bench/lora_vs_full.sh          # needs .venv-bench with peft (see bench/peft_finetune.py)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/release/jielong
py=${PY:-$PWD/.venv-bench/bin/python}
[ -x "$bin" ] || cargo build --release
work=${WORK:-target/bench-lora}
mkdir -p "$work"
[ -d "$work/minilm" ] || "$bin" import --from data/minilm --out "$work/minilm" >/dev/null
[ -f "$work/train.jsonl" ] || "$bin" data labelled --from spam-assassin --dir data/spam-assassin --per-label 256 --max-chars 600 --out "$work/train.jsonl" >/dev/null
echo "host load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "${ROUNDS:-2}"); do
  for regime in full lora; do
    rm -rf "$work/out-$regime"
    line=$( { /usr/bin/time -f "peak_rss_kb %M" "$bin" finetune --task classify --checkpoint "$work/minilm" --data "$work/train.jsonl" --val-fraction 0 --regime "$regime" --pooling cls --epochs 1 --batch-size 16 --max-len 128 --lora-targets q,v --out "$work/out-$regime" | grep "tokens/s · "; } 2>&1 | tr '\n' ' ')
    echo "round $r jielong $regime: $line"
    line=$( { /usr/bin/time -f "peak_rss_kb %M" "$py" bench/peft_finetune.py --model data/minilm --data "$work/train.jsonl" --regime "$regime"; } 2>&1 | grep -v Warning | tr '\n' ' ')
    echo "round $r pytorch $regime: $line"
  done
done
echo "host load $(cut -d' ' -f1-3 /proc/loadavg)"
