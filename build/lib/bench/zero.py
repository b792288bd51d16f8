"""ZeRO-2 against ZeRO-3: the joint stage (mapper + LoRA, CE through the LLM) of the embedded default on 2 CPU
processes, launched as a user would; per-process peak memory and median step time.

    python bench/zero.py --steps 6
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

from bench.common import ARCTIC, ROOT, WORK_DIR, default_checkpoint, print_result
from bench.feature_cache import write_clips

CONFIGS = {"zero2": "ds_config.json", "zero3": "ds_config_zero3.json"}


def write_manifest(clips: int) -> str:
    path = os.path.join(WORK_DIR, f"asr-{clips}.jsonl")
    with open(path, "w") as handle:
        for i, audio in enumerate(write_clips(clips)):
            handle.write(json.dumps({"id": f"clip-{i}", "audio": audio, "transcript": ARCTIC.transcript, "task": "asr"}) + "\n")
    return path


def launch(ds_config: str, checkpoint: str, manifest: str, steps: int, timings_dir: str) -> None:
    output_dir = os.path.join(WORK_DIR, "zero-run")
    shutil.rmtree(output_dir, ignore_errors=True)
    shutil.rmtree(timings_dir, ignore_errors=True)
    os.makedirs(timings_dir)
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--use_deepspeed", "--deepspeed_config_file",
        os.path.join(ROOT, ds_config), "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", os.path.join(ROOT, "bench", "timed_train.py"),
        "--stage", "joint", "--model_name_or_path", checkpoint, "--train_file", manifest, "--output_dir", output_dir,
        "--task_probabilities", "asr=1.0", "--max_steps", str(steps), "--per_device_train_batch_size", "2",
        "--logging_steps", "1", "--report_to", "none", "--save_strategy", "no", "--ddp_backend", "gloo",
    ]  # fmt: skip
    env = dict(os.environ, BENCH_TIMINGS_DIR=timings_dir, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{ds_config} run failed:\n{result.stderr[-3000:]}")


def per_process(timings_dir: str) -> dict:
    ranks = []
    for name in sorted(os.listdir(timings_dir)):
        with open(os.path.join(timings_dir, name)) as handle:
            ranks.append(json.load(handle))
    steps = [s for rank in ranks for s in rank["step_s"][1:]]  # the first step builds DeepSpeed's buffers
    return {"processes": len(ranks), "step_s": statistics.median(steps), "peak_rss_gib": max(r["peak_rss_gib"] for r in ranks)}


def run(steps: int) -> dict:
    checkpoint = default_checkpoint()
    manifest = write_manifest(16)
    results = {}
    for name, ds_config in CONFIGS.items():
        timings_dir = os.path.join(WORK_DIR, f"timings-{name}")
        launch(ds_config, checkpoint, manifest, steps, timings_dir)
        results[name] = per_process(timings_dir)
    results["zero3_memory_ratio"] = results["zero2"]["peak_rss_gib"] / results["zero3"]["peak_rss_gib"]
    results["zero3_step_ratio"] = results["zero3"]["step_s"] / results["zero2"]["step_s"]
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    print_result(run(parser.parse_args().steps))
