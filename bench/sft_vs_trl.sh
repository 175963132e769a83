#!/usr/bin/env bash
# SFT beside TRL: `jielong sft --regime full|lora|prefix|prompt` against TRL 1.16's SFTTrainer
# (+ PEFT LoraConfig / PrefixTuningConfig / PromptTuningConfig, bench/trl_sft.py) on the same
# model, data, template, sequence length, batch, steps and threads: training tokens/s and peak
# RSS (/usr/bin/time -f %M), the programs alternated, ROUNDS rounds, one line per run.
# Model: a GPT checkpoint of the medium preset (6 layers, 384 wide, 6 heads, context 256,
# byte-level BPE of 8,192 ids on the handbook), trained a few steps (throughput does not depend
# on the weights) and written with `jielong export --format hf`, so TRL loads the identical
# model. Data: chatterbot-corpus's English conversations (`jielong data chat`, scripts/fetch-data);
# loss on the assistant's tokens; examples padded to the longest of their batch; LoRA rank 8,
# alpha 16 on every linear layer; 20 virtual tokens for prefix and prompt tuning.
#
#     PY=/path/to/.venv-bench/bin/python bash bench/sft_vs_trl.sh   # STEPS=30 ROUNDS=2 BATCH=8 THREADS=2
#     STEPS=2 ROUNDS=1 CONVERSATIONS=200 REGIMES="full lora" bash bench/sft_vs_trl.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/release/jielong
py=${PY:-$PWD/.venv-bench/bin/python}
[ -x "$py" ] || { echo "no Python at $py: set PY to the venv with torch, transformers, peft, trl" >&2; exit 2; }
[ -x "$bin" ] || cargo build --release
steps=${STEPS:-30}
batch=${BATCH:-8}
threads=${THREADS:-2}
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
work=${WORK:-target/bench-sft-trl}
mkdir -p "$work"
if [ ! -f "$work/run/config.toml" ]; then
  cat > "$work/medium.toml" <<'TOML'
[data]
dir = "shards"

[model]
family = "gpt"
n_layer = 6
n_head = 6
n_embd = 384
max_seq_len = 256
dropout = 0.0

[train]
batch_size = 8
max_steps = 10
warmup_steps = 2
eval_interval = 10
eval_windows = 4
checkpoint_interval = 10
TOML
  (cd "$work" && "$bin" tokenizer train --kind bpe --vocab-size 8192 --out tok "$OLDPWD/docs/handbook" >/dev/null \
     && "$bin" data prepare --tokenizer tok/tokenizer.json --out shards "$OLDPWD/docs/handbook" >/dev/null \
     && "$bin" train --config medium.toml --out run >/dev/null 2>&1)
fi
[ -d "$work/hf" ] || "$bin" export --checkpoint "$work/run" --format hf --out "$work/hf" >/dev/null
[ -f "$work/chat-all.jsonl" ] || "$bin" data chat --from chatterbot data/chatterbot/english --out "$work/chat-all.jsonl" >/dev/null
# CONVERSATIONS=N keeps the first N (jielong sft scores the whole file before and after training).
head -n "${CONVERSATIONS:-1000000}" "$work/chat-all.jsonl" > "$work/chat.jsonl"
echo "host load $(cut -d' ' -f1-3 /proc/loadavg) · $(nproc) CPUs · steps $steps · batch $batch · threads $threads"
for r in $(seq 1 "${ROUNDS:-2}"); do
  for regime in ${REGIMES:-full lora prefix prompt}; do
    rm -rf "$work/out-$regime"
    line=$( { /usr/bin/time -f "peak_rss_kb %M" "$bin" sft --checkpoint "$work/run" --data "$work/chat.jsonl" --template builtin --regime "$regime" \
      --max-steps "$steps" --batch-size "$batch" --lora-rank 8 --lora-alpha 16 --num-virtual-tokens 20 --out "$work/out-$regime" \
      | grep -E "tokens/s|before →"; } 2>&1 | grep -v "^warning" | tr "\n" " " || true)
    echo "round $r jielong $regime: $line"
    line=$( { /usr/bin/time -f "peak_rss_kb %M" "$py" bench/trl_sft.py --model "$work/hf" --data "$work/chat.jsonl" --regime "$regime" \
      --steps "$steps" --batch-size "$batch" --max-length 256 --lora-rank 8 --num-virtual-tokens 20 --threads "$threads"; } 2>&1 \
      | grep -E '^\{"|peak_rss_kb|Error' | tr '\n' ' ' || true)
    echo "round $r trl $regime: $line"
  done
done
echo "host load $(cut -d' ' -f1-3 /proc/loadavg)"
