#!/usr/bin/env bash
# The gc_tuned experiment, off and on, interleaved twice (see README.md beside this).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
out=benchmarks/results/gc_tuned
for i in 1 2; do
  for v in off on; do
    extra=()
    [ "$v" = on ] && extra=(--experiment gc_tuned)
    .venv/bin/python -m benchmarks --scenario voice --levels 50,100 --seconds 10 \
      --quiet-wait 10 "${extra[@]}" --out "$out/raw_${v}_$i" >/dev/null
    cp "$out/raw_${v}_$i/summary.md" "$out/${v}_$i.md"
    rm -r "$out/raw_${v}_$i"
  done
done
