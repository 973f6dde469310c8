#!/bin/bash
# Recreate the venv (if needed) and regenerate every result file.
set -e
cd "$(dirname "$0")"
[ -x /work/refvenv/bin/python ] || { python3 -m venv /work/refvenv &&
  /work/refvenv/bin/pip install torch==2.13.0 diffusers==0.42.1 transformers==5.24.0 accelerate==1.15.0 sentencepiece protobuf; }
PY=/work/refvenv/bin/python
$PY sd15.py && $PY llama.py && $PY sdxl_dit.py && $PY summarize.py > ../results/summary.md
