#!/usr/bin/env bash
# Side-by-side training throughput: jielong vs PyTorch (eager and torch.compile) on the same
# machine in one session, identical model and optimizer. Writes one JSON line per run to
# stdout; needs scripts/install-bench-deps once. Usage: bench/compare.sh [steps]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps="${1:-10}"
py=.venv-bench/bin/python
cargo build --release -q
for preset in small medium; do
  target/release/jielong bench train --preset "$preset" --steps "$steps" --json
  "$py" bench/pytorch_gpt.py --preset "$preset" --steps "$steps" --json 2>/dev/null
  "$py" bench/pytorch_gpt.py --preset "$preset" --steps "$steps" --compile --json 2>/dev/null
done
