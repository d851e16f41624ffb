#!/usr/bin/env bash
# rt_server on a core of its own (--pin): two text runs and one voice run (README.md here).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
out=benchmarks/results/pinned
for i in 1 2; do
  .venv/bin/python -m benchmarks --pin --scenario text --turns 300 --quiet-wait 10 \
    --out "$out/raw_text_$i" >/dev/null
  cp "$out/raw_text_$i/summary.md" "$out/text_$i.md"
  rm -r "$out/raw_text_$i"
done
.venv/bin/python -m benchmarks --pin --scenario voice --levels 50,100 --seconds 10 \
  --quiet-wait 10 --out "$out/raw_voice" >/dev/null
cp "$out/raw_voice/summary.md" "$out/voice.md"
rm -r "$out/raw_voice"
