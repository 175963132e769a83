#!/usr/bin/env bash
# Side-by-side training throughput: jielong vs PyTorch (eager and torch.compile) on the same
# machine in one session, identical model and optimizer. The three run in turn, `rounds`
# times (interleaved, so a slow spell of a shared machine hits all of them), each printing one
# JSON line; bench/summarize.py then reports medians, ratios and MFU against the best matmul
# peak measured in the whole session. Needs scripts/install-bench-deps once.
# Usage: bench/compare.sh [steps] [rounds] [presets...]
#        THREADS=1 bench/compare.sh ...   (every side on that many threads; default: all CPUs)
#        FAMILY=llama bench/compare.sh ...  (the Llama-layout model: `--family llama` to both
#                                            `jielong bench train` and bench/pytorch_gpt.py;
#                                            unset: neither gets --family, i.e. GPT-2 layout)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps="${1:-10}"
rounds="${2:-3}"
shift $(( $# > 2 ? 2 : $# ))
presets=("${@:-small medium}")
py=.venv-bench/bin/python
threads=()
if [ -n "${THREADS:-}" ] && ! [[ "$THREADS" =~ ^[1-9][0-9]*$ ]]; then
  echo "compare.sh: THREADS=$THREADS is not a positive whole number; use e.g. THREADS=1" >&2
  exit 2
fi
if [ -n "${THREADS:-}" ]; then
  export RAYON_NUM_THREADS="$THREADS"
  threads=(--threads "$THREADS")
fi
family=()
case "${FAMILY:-}" in
  "") ;;
  gpt|llama) family=(--family "$FAMILY") ;;
  *) echo "compare.sh: FAMILY=$FAMILY is not a model family; use FAMILY=gpt or FAMILY=llama" >&2; exit 2 ;;
esac
cargo build --release -q
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for preset in ${presets[@]}; do
  for _ in $(seq "$rounds"); do
    target/release/jielong bench train "${family[@]}" --preset "$preset" --steps "$steps" --json | tee -a "$out"
    "$py" bench/pytorch_gpt.py "${family[@]}" --preset "$preset" --steps "$steps" "${threads[@]}" --json 2>/dev/null | tee -a "$out"
    "$py" bench/pytorch_gpt.py "${family[@]}" --preset "$preset" --steps "$steps" "${threads[@]}" --compile --json 2>/dev/null | tee -a "$out"
  done
done
"$py" bench/summarize.py < "$out"
