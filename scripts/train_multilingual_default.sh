#!/usr/bin/env bash
# The multilingual default's stages A, B and C (default_model/RECIPE.md), resumably: run it again after a kill and it
# goes on where it stopped. A stage whose output holds config.json is finished and skipped; an unfinished one resumes
# from its newest checkpoint-N. After each finished stage its trainable weights (mapper + LoRA, fp16, tens of MB) go
# to progress/, to be committed, so that another machine can continue (RECIPE.md says how).
#   scripts/train_multilingual_default.sh            # needs the v2 build in outputs/fakacl-v2 (synthesis/DATA.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BASE=outputs/multilingual-base

if [ ! -f "$BASE/config.json" ]; then
  "$PYTHON" scripts/build_default_model.py "$BASE" --base-only --settings configs/multilingual_default.json
fi
for stage in a b c; do
  output=outputs/multilingual-stage-$stage
  if [ ! -f "$output/config.json" ]; then
    "$PYTHON" train.py "configs/multilingual_stage_$stage.yaml" --resume_from_checkpoint latest
  fi
  snapshot=progress/multilingual-stage-$stage.safetensors
  if [ ! -f "$snapshot" ]; then
    "$PYTHON" scripts/export_default_weights.py "$output" --output "$snapshot"
  fi
done
