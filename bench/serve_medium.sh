#!/usr/bin/env bash
# The serve issue's load targets on the medium preset (GPT, 6 layers, 384 wide, context 256,
# byte-level BPE 8,192): trains a checkpoint of that shape for a few steps on the handbook (the
# weights only need to be real enough to produce text; throughput does not depend on them), then
#   1. `jielong generate` single-stream, 64 new tokens, 5 runs (its own tokens/s line), and
#   2. `bench/serve_load.py` against `jielong serve --parallel 16` at 1, 4 and 16 clients.
# Targets: aggregate tokens/s at 16 streams >= 5x one stream; one stream within 10% of
# `jielong generate`; TTFT p99 under 16 streams reported.
#
#     bash bench/serve_medium.sh            # ~3 minutes here
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/release/jielong
[ -x "$bin" ] || cargo build --release
work=${WORK:-target/bench-serve-medium}
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

[train]
batch_size = 8
max_steps = 40
warmup_steps = 4
eval_interval = 40
eval_windows = 8
checkpoint_interval = 40
TOML
  (cd "$work" && "$bin" tokenizer train --kind bpe --vocab-size 8192 --out tok "$OLDPWD/docs/handbook" >/dev/null \
     && "$bin" data prepare --tokenizer tok/tokenizer.json --out shards "$OLDPWD/docs/handbook" >/dev/null \
     && "$bin" train --config medium.toml --out run >/dev/null 2>&1)
fi
prompt="The model reads the words so far and"
echo "## jielong generate, one stream, 64 new tokens (load $(cut -d' ' -f1 /proc/loadavg))"
for i in 1 2 3 4 5; do
  "$bin" generate --checkpoint "$work/run" --prompt "$prompt" --max-tokens 64 --temperature 0.8 --seed "$i" 2>&1 >/dev/null | grep -o '[0-9.]* tokens/s'
done
log=$work/serve.log
"$bin" serve --checkpoint "$work/run" --port 0 --parallel 16 --queue 64 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
url=""
for _ in $(seq 1 200); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$log"; exit 1; }
echo "## jielong serve --parallel 16 (load $(cut -d' ' -f1 /proc/loadavg))"
python3 bench/serve_load.py --url "$url" --clients "${CLIENTS:-1,4,16}" --seconds "${SECONDS_EACH:-10}" --max-tokens 64
