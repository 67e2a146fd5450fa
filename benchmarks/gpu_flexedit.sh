#!/usr/bin/env bash
# GPU check of FlexEdit (issue 5): trains `small` from scratch on the mini training split for
# TRAIN_SECONDS (default 300 s), then reports samples/s, the loss curve, held-out mask IoU before/after
# training vs copy-paste, and `fsmi score` figures. Sized for < 8 minutes on one H100.
#   bash benchmarks/gpu_flexedit.sh [OUT]        # results in OUT/report.json (default gpu_flexedit_out)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-gpu_flexedit_out}}"
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PYTHON" benchmarks/bench_flexedit_overhead.py --config small --size 256 --steps 20
"$PYTHON" benchmarks/gpu_flexedit.py --out "$OUT" --train-seconds "${TRAIN_SECONDS:-300}" --eval-steps 20
