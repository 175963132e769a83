#!/usr/bin/env bash
# `jielong bench generate` and bench/hf_generate.py (transformers, same GPT-2 shape) alternated,
# ROUNDS times (default 3), medium preset, batches 1, 8, 16, KV cache on, 2 threads each.
# Prints one JSON line per (program, batch, round); run on a quiet host (PyTorch's OpenMP
# threads collapse when other processes compete for the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv-bench/bin/python}
for r in $(seq 1 "${ROUNDS:-3}"); do
  echo "# round $r jielong, load $(cut -d' ' -f1 /proc/loadavg)"
  target/release/jielong bench generate --preset medium --batches 1,8,16 --recompute false --json
  echo "# round $r transformers, load $(cut -d' ' -f1 /proc/loadavg)"
  THREADS=2 "$py" bench/hf_generate.py --preset medium --batches 1,8,16 --recompute false --json 2>/dev/null
done
