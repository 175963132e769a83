#!/usr/bin/env bash
# The data-pipeline benchmark: jielong data clean vs datatrove, same documents, same stages and
# thresholds, same number of workers, alternating, whole processes timed by /usr/bin/time -v.
#   scripts/fetch-data --bench && python3 bench/pipeline_data.py
#   python3 -m venv .venv-bench && .venv-bench/bin/pip install "datatrove[processing]" orjson spacy
#   cargo build --release && bench/pipeline.sh 2 1          (SETS="emails poetry wiki" picks sets)
# Prints one JSON line per run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads="${1:-2}" rounds="${2:-1}"
d=target/bench-pipeline
head -40000 "$d/poetry.jsonl" > "$d/poetry-40k.jsonl"
run() { # name tool input args...
  local name="$1" tool="$2" input="$3"; shift 3
  local log; log=$(mktemp)
  if [[ "$tool" == jielong ]]; then
    rm -rf "$d/out-$name"
    /usr/bin/time -v target/release/jielong data clean "$@" --threads "$threads" --out "$d/out-$name" "$input" >"$log" 2>&1
    kept=$(python3 -c "import json;print(json.load(open('$d/out-$name/report.json'))['docs_out'])")
  else
    /usr/bin/time -v "${PY:-.venv-bench/bin/python}" bench/pipeline_datatrove.py "$input" "$d/dt-$name" "$threads" "$@" >"$log" 2>&1
    kept=$(grep '"tool"' "$log" | python3 -c "import json,sys;print(json.loads(sys.stdin.read())['kept'])")
  fi
  local secs rss
  secs=$(grep "Elapsed (wall" "$log" | awk '{print $NF}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(grep "Maximum resident" "$log" | awk '{print $NF}')
  echo "{\"set\": \"$name\", \"tool\": \"$tool\", \"seconds\": $secs, \"peak_rss_kb\": $rss, \"kept\": $kept, \"bytes\": $(stat -c %s "$input")}"
  rm -f "$log"
}
sets="${SETS:-emails poetry wiki}"
for r in $(seq "$rounds"); do
  if [[ " $sets " == *" emails "* ]]; then
    run emails jielong "$d/emails.jsonl" --pipeline bench/pipeline-bench.toml
    run emails datatrove "$d/emails.jsonl"
  fi
  if [[ " $sets " == *" poetry "* ]]; then
    run poetry jielong "$d/poetry-40k.jsonl" --pipeline bench/pipeline-dedup.toml
    run poetry datatrove "$d/poetry-40k.jsonl" dedup
  fi
  if [[ " $sets " == *" wiki "* ]]; then
    run wiki jielong "$d/wiki.jsonl" --pipeline bench/pipeline-bench.toml
    run wiki datatrove "$d/wiki.jsonl"
  fi
done
