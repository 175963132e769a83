#!/usr/bin/env bash
# BERT masked-LM learning curve, jielong vs transformers' BertForMaskedLM, on text where a masked
# word is given by either neighbour: 40 documents of 600 words cycling through 20 words (our own
# synthetic text). Trains a tiny jielong BERT for 300 steps, then bench/hf_mlm_curve.py trains
# HF's model with the same shape and recipe on the same shards and prints both validation curves.
#
#   bench/mlm_curve.sh [WORK_DIR]      (default target/bench-mlm-curve; needs .venv-bench)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
J="$root/target/release/jielong"
PY="${PY:-$root/.venv-bench/bin/python}"
work="${1:-target/bench-mlm-curve}"
rm -rf "$work" && mkdir -p "$work" && cd "$work"
python3 - <<'PY'
import random
w = "north east south west red green blue gold one two three four five six seven eight nine ten sun moon".split()
random.seed(1)
docs = []
for _ in range(40):
    s = random.randrange(len(w))
    docs.append(" ".join(w[(s + i) % len(w)] for i in range(600)))
open("cyc.txt", "w").write("\n\n".join(docs) + "\n")
PY
"$J" tokenizer train --kind wordpiece --vocab-size 200 --out tok cyc.txt >/dev/null
"$J" data prepare --tokenizer tok --out shards cyc.txt >/dev/null
cat >b.toml <<'TOML'
[data]
dir = "shards"
[model]
family = "bert"
n_layer = 2
n_head = 4
n_embd = 64
max_seq_len = 32
dropout = 0.0
[train]
objective = "mlm"
batch_size = 16
max_steps = 300
learning_rate = 2e-3
warmup_steps = 20
eval_interval = 50
eval_windows = 128
checkpoint_interval = 300
TOML
"$J" train --config b.toml --out b >/dev/null
"$PY" "$root/bench/hf_mlm_curve.py" --run b
