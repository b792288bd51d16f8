#!/usr/bin/env bash
# The multilingual default's stages A, B and C (default_model/RECIPE.md), resumably: run it again after a kill and it
# goes on where it stopped. A stage whose output holds config.json is finished and skipped; one whose snapshot is
# committed (progress/multilingual-stage-X.safetensors) is rebuilt from it, not trained again (move the snapshot aside
# to retrain the stage); an unfinished one resumes from its newest checkpoint-N. After each finished stage its
# trainable weights (mapper + LoRA, fp16, tens of MB) go to progress/, to be committed, so that another machine can
# continue (RECIPE.md says how). A stage still running when a session ends is snapshotted by hand (mapper + LoRA and the
# run's position, from its newest checkpoint):
#   .venv/bin/python scripts/export_default_weights.py outputs/multilingual-stage-X/checkpoint-N \
#       --output progress/multilingual-stage-X.partial.safetensors
# and on a machine without that checkpoint this script rebuilds it from the snapshot and resumes there.
#   scripts/train_multilingual_default.sh   # needs the v2 build (outputs/fakacl-v2) and stage A's extra build
#                                           # (outputs/fakacl-v2-fast): synthesis/DATA.md
# A and B run side by side (appending to outputs/multilingual-stage-{a,b}.log: a rerun keeps a finished stage's log), then C,
# then C-ASR (C continued on ASR alone), then C2 (the joint mix again), then C3 (the papers' mix, lower learning rates),
# then C-real (real recordings in the ASR share).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BASE=outputs/multilingual-base

if [ ! -f "$BASE/config.json" ]; then
  "$PYTHON" scripts/build_default_model.py "$BASE" --base-only --settings configs/multilingual_default.json
fi
STAGES=(a b c c_asr c2 c3 c_real)
later_stage_ready() {  # a later stage is finished here or committed: nothing needs this one (its snapshot may be gone)
  local stage=$1 seen=0 later
  for later in "${STAGES[@]}"; do
    if [ "$seen" = 1 ] && { [ -f "outputs/multilingual-stage-$later/config.json" ] || [ -e "progress/multilingual-stage-$later.safetensors" ]; }; then
      return 0
    fi
    [ "$later" = "$stage" ] && seen=1
  done
  return 1
}
run_stage() {  # stage letter, then how to run it (a command prefix, e.g. taskset -c 0)
  local stage=$1 output=outputs/multilingual-stage-$1
  shift
  if [ ! -f "$output/config.json" ] && later_stage_ready "$stage"; then
    return 0
  fi
  local snapshot=progress/multilingual-stage-$stage.safetensors
  if [ ! -f "$output/config.json" ] && [ -f "$snapshot" ]; then  # finished on another machine: rebuild it from its snapshot
    "$PYTHON" scripts/build_default_model.py "$output" --settings configs/multilingual_default.json --weights "$snapshot"
  fi
  local partial=progress/multilingual-stage-$stage.partial.safetensors
  if [ ! -f "$output/config.json" ] && [ -f "$partial" ] && ! compgen -G "$output/checkpoint-*" > /dev/null; then
    # in progress on another machine: its checkpoint rebuilt from the committed snapshot (same step and schedule)
    "$PYTHON" -m training.snapshots restore "$partial" --config "configs/multilingual_stage_$stage.yaml"
  fi
  if [ ! -f "$output/config.json" ]; then
    "$@" "$PYTHON" train.py "configs/multilingual_stage_$stage.yaml" --resume_from_checkpoint latest
  fi
  if [ ! -f "$snapshot" ]; then
    "$PYTHON" scripts/export_default_weights.py "$output" --output "$snapshot"
    rm -f "$partial"  # the finished stage's snapshot replaces it
  fi
}

# A (mapper, no LLM) and B (text-only LoRA) need nothing of each other, as in the papers: on a machine of a few cores
# they run side by side, a core each (small CPU steps use one thread about as well as two), logs beside their outputs.
cores=$(nproc)
if [ "$cores" -ge 2 ] && command -v taskset > /dev/null; then
  half=$((cores / 2))
  OMP_NUM_THREADS=$half run_stage a taskset -c 0-$((half - 1)) >> outputs/multilingual-stage-a.log 2>&1 &
  first=$!
  OMP_NUM_THREADS=$half run_stage b taskset -c $half-$((cores - 1)) >> outputs/multilingual-stage-b.log 2>&1 &
  second=$!
  wait "$first" && wait "$second"
else
  run_stage a env
  run_stage b env
fi
run_stage c env
run_stage c_asr env  # stage C continued on ASR alone: the LLM learns to read the mapper first (configs/multilingual_stage_c_asr.yaml)
run_stage c2 env  # then the joint mix again, ASR-heavier (configs/multilingual_stage_c2.yaml)
run_stage c3 env  # then the papers' mix at lower learning rates, for translation and answers (configs/multilingual_stage_c3.yaml)
# then real speech in the ASR share (speechocean762's training speakers, at ../shared/data or SPEECHOCEAN762, and
# Debian's Asterisk prompts): configs/multilingual_stage_c_real.yaml
[ -f outputs/asterisk-prompts/metadata.jsonl ] || "$PYTHON" -m training.asterisk_prompts --output_dir outputs/asterisk-prompts
run_stage c_real env
