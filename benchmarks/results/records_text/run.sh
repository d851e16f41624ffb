#!/usr/bin/env bash
# Text turns with conversation records on (the default) and off, interleaved (README.md here).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
out=benchmarks/results/records_text
for i in 1 2 3; do
  for v in on off; do
    .venv/bin/python -m benchmarks --ref HEAD --scenario text --turns 300 --quiet-wait 10 \
      --env "RECORDS=$v" --out "$out/raw_${v}_$i" >/dev/null
    cp "$out/raw_${v}_$i/summary.md" "$out/${v}_$i.md"
    rm -r "$out/raw_${v}_$i"
  done
done
