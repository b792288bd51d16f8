"""train.py with a stopwatch: every process writes its step times and peak memory to $BENCH_TIMINGS_DIR/rank-N.json.

    accelerate launch ... bench/timed_train.py <train.py arguments>
"""

import json
import os
import sys
import time

from transformers import TrainerCallback

import train
from bench.common import peak_rss_gib


class StepTimer(TrainerCallback):
    def __init__(self, directory: str):
        self.directory = directory
        self.durations = []
        self.started = None

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.durations.append(time.perf_counter() - self.started)

    def on_train_end(self, args, state, control, **kwargs):
        rank = os.environ.get("RANK", "0")
        with open(os.path.join(self.directory, f"rank-{rank}.json"), "w") as handle:
            json.dump({"step_s": self.durations, "peak_rss_gib": peak_rss_gib()}, handle)


if __name__ == "__main__":
    train.main(sys.argv[1:], callbacks=[StepTimer(os.environ["BENCH_TIMINGS_DIR"])])
