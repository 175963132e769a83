#!/usr/bin/env bash
# Does starting a GPT's embedding table from word vectors help? Same data, model, seed and
# steps, with and without `jielong train --init-embeddings`; prints the validation loss of each.
#
#   bench/init_embeddings.sh [SEEDS] [STEPS]      (default: "1 2", 300)
#
# Needs `cargo build --release`. The text is every Shakespeare play and poem in data/shakespeare
# (scripts/fetch-data). A word tokenizer (8192 tokens, jieba for any Chinese) cuts it; skip-gram
# vectors of n_embd = 96 dimensions are trained on the same files (note: on all of them, so the
# validation tenth is in the vectors' co-occurrence counts too: a mild leak, unsupervised).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SEEDS="${1:-1 2}"
STEPS="${2:-300}"
J=target/release/jielong
OUT=target/bench-init-embeddings
mkdir -p "$OUT"
[[ -d $OUT/tk ]] || "$J" tokenizer train --kind word --vocab-size 8192 --out "$OUT/tk" data/shakespeare >/dev/null
[[ -d $OUT/shards ]] || "$J" data prepare --tokenizer "$OUT/tk" --out "$OUT/shards" data/shakespeare >/dev/null
[[ -d $OUT/vectors ]] || "$J" vectors train --method skipgram --dim 96 --min-count 1 --epochs 5 \
    --out "$OUT/vectors" data/shakespeare >/dev/null
SETS=(--set "data.dir=\"$OUT/shards\"" --set model.n_layer=2 --set model.n_head=4 --set model.n_embd=96
      --set model.max_seq_len=64 --set train.batch_size=16 --set "train.max_steps=$STEPS"
      --set train.warmup_steps=30 --set "train.eval_interval=$STEPS" --set "train.checkpoint_interval=$STEPS"
      --set train.eval_windows=128)
for seed in $SEEDS; do
  for init in random vectors; do
    extra=()
    [[ $init == vectors ]] && extra=(--init-embeddings "$OUT/vectors")
    rm -rf "$OUT/run-$init-$seed"
    log=$("$J" train --config configs/gpt-tiny.toml "${SETS[@]}" --set "train.seed=$seed" "${extra[@]}" \
        --out "$OUT/run-$init-$seed" 2>&1)
    val=$(grep -o 'validation loss [0-9.]*' <<<"$log" | awk '{print $3}')
    cov=$(grep -o 'embeddings: [0-9]* of [0-9]*' <<<"$log" || true)
    echo "{\"init\": \"$init\", \"seed\": $seed, \"steps\": $STEPS, \"val_loss\": $val, \"covered\": \"${cov#embeddings: }\"}"
  done
done
