#!/usr/bin/env bash
# GPU check of the `paper` config at its real size (random weights in the real formats): build, 10 optimisation
# steps at 512 x 512 with paper.json's own settings (batch 4 x gradient accumulation 4, bf16 autocast with the
# frozen bases in bfloat16, gradient checkpointing: what tests/flexedit/test_mixed_precision.py trains with on
# CPU), save, load, one 50-step edit; prints peak GPU memory, samples/s, seconds per edit, checkpoint and state
# sizes as one JSON line (also in OUT/figures.json; the log in OUT/log.txt). Needs about 40 GB of disk for the
# random weights and the outputs (LLaVA-7B in float16 is 13.5 GB) and an 80 GB GPU; aimed at < 8 minutes.
#   bash research/flexedit_training/gpu_flexedit_paper.sh [OUT]
# Dry run on CPU (tiny stand-ins): SIZE=tiny DEVICE=cpu ARGS="--steps 1 --resolution 32 --batch-size 2 --edit-steps 2" bash ...
# OPTIMIZER=adamw8bit trains with bitsandbytes' AdamW8bit (pip install -e '.[adamw8bit]'); default adamw.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-${OUT:-gpu_flexedit_paper_out}}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [ -z "${WORK:-}" ]; then WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT; fi
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$WORK/hf" TORCH_HOME="$WORK/torch" FSMI_CACHE_DIR="$WORK/fsmi"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
# shellcheck disable=SC2086
timeout "${LIMIT_S:-470}" "$PYTHON" research/flexedit_training/gpu_flexedit_paper.py --work "$WORK" \
  --size "${SIZE:-real}" --device "${DEVICE:-cuda}" --optimizer "${OPTIMIZER:-adamw}" ${ARGS:-} 2>"$OUT/log.txt" | tee "$OUT/figures.json"
