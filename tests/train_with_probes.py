"""train.py with test probes: records which examples each process sees, and can SIGKILL itself at a step.

    PROBE_IDS_DIR=dir   each process appends the `id`s of its batches to dir/rank-N.txt
    PROBE_KILL_AT_STEP=k   the process kills itself (SIGKILL, no cleanup) when step k begins
"""

import os
import signal
import sys

from transformers import TrainerCallback

import train
from training import data, mapper_pretraining


class KillAtStep(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def record_ids(collator_class, directory):
    original = collator_class.__call__

    def call(self, examples):
        rank = os.environ.get("RANK", "0")
        with open(os.path.join(directory, f"rank-{rank}.txt"), "a") as handle:
            handle.write(" ".join(str(e["id"]) for e in examples) + "\n")
        return original(self, examples)

    collator_class.__call__ = call


if __name__ == "__main__":
    callbacks = []
    if os.environ.get("PROBE_KILL_AT_STEP"):
        callbacks.append(KillAtStep(int(os.environ["PROBE_KILL_AT_STEP"])))
    if os.environ.get("PROBE_IDS_DIR"):
        record_ids(data.InstructionCollator, os.environ["PROBE_IDS_DIR"])
        record_ids(mapper_pretraining.StageACollator, os.environ["PROBE_IDS_DIR"])
    train.main(sys.argv[1:], callbacks=callbacks)
