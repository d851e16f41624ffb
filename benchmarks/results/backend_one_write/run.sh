#!/usr/bin/env bash
# The backend_one_write experiment, off and on, interleaved three times (README.md here).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
out=benchmarks/results/backend_one_write
for i in 1 2 3; do
  for v in off on; do
    extra=()
    [ "$v" = on ] && extra=(--experiment backend_one_write)
    .venv/bin/python -m benchmarks --scenario text --turns 300 --quiet-wait 10 \
      "${extra[@]}" --out "$out/raw_${v}_$i" >/dev/null
    cp "$out/raw_${v}_$i/summary.md" "$out/${v}_$i.md"
    rm -r "$out/raw_${v}_$i"
  done
done
