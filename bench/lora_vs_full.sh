#!/usr/bin/env bash
# LoRA against full fine-tuning on the same base, jielong beside transformers (+ PEFT for LoRA):
# trainable share, peak RSS and training tokens/s, the programs alternated, ROUNDS rounds.
# Bases (BASES, default "minilm gpt"):
#   minilm: the MiniLM encoder fetched by scripts/fetch-data (BERT architecture, 6 layers, 384
#           wide, 22.7 M parameters), pooled at [CLS], LoRA rank 8, alpha 16 on query and value;
#   gpt:    the medium GPT preset (6 layers, 384 wide, context 256, BPE 8,192) that
#           bench/serve_medium.sh trains, exported with `jielong export` so transformers loads
#           the identical model (GPT2ForSequenceClassification, last real token), LoRA rank 8,
#           alpha 16 on the fused c_attn.
# Data: SpamAssassin ham/spam (`jielong data labelled`), 512 examples, one epoch, batch 16, at
# most 128 tokens.
#
#     bash bench/lora_vs_full.sh          # needs .venv-bench with peft (see bench/peft_finetune.py)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/release/jielong
py=${PY:-$PWD/.venv-bench/bin/python}
[ -x "$bin" ] || cargo build --release
work=${WORK:-target/bench-lora}
mkdir -p "$work"
[ -f "$work/train.jsonl" ] || "$bin" data labelled --from spam-assassin --dir data/spam-assassin --per-label 256 --max-chars 600 --out "$work/train.jsonl" >/dev/null
for base in ${BASES:-minilm gpt}; do
  case $base in
    minilm)
      [ -d "$work/minilm" ] || "$bin" import --from data/minilm --out "$work/minilm" >/dev/null
      ours=$work/minilm; hf=data/minilm; targets=q,v; pooling=cls ;;
    gpt)
      [ -f target/bench-serve-medium/run/config.toml ] || { echo "the medium GPT comes from bench/serve_medium.sh: run it first" >&2; exit 2; }
      [ -d "$work/gpt-hf" ] || "$bin" export --checkpoint target/bench-serve-medium/run --out "$work/gpt-hf" >/dev/null
      ours=target/bench-serve-medium/run; hf=$work/gpt-hf; targets=c_attn; pooling=last ;;
    *) echo "unknown base $base (minilm, gpt)" >&2; exit 2 ;;
  esac
  echo "# $base · host load $(cut -d' ' -f1-3 /proc/loadavg)"
  for r in $(seq 1 "${ROUNDS:-2}"); do
    for regime in full lora; do
      rm -rf "$work/out-$base-$regime"
      line=$(/usr/bin/time -f "peak_rss_kb %M" -o "$work/rss" "$bin" finetune --task classify --checkpoint "$ours" --data "$work/train.jsonl" --val-fraction 0 --regime "$regime" --pooling "$pooling" --epochs 1 --batch-size 16 --max-len 128 --lora-targets "$targets" --out "$work/out-$base-$regime" 2>/dev/null | grep "tokens/s · ")
      echo "round $r $base jielong $regime: $line $(tail -1 "$work/rss")"
      line=$(/usr/bin/time -f "peak_rss_kb %M" -o "$work/rss" "$py" bench/peft_finetune.py --model "$hf" --data "$work/train.jsonl" --regime "$regime" 2>/dev/null | tail -1)
      echo "round $r $base pytorch $regime: $line $(tail -1 "$work/rss")"
    done
  done
done
echo "host load $(cut -d' ' -f1-3 /proc/loadavg)"
