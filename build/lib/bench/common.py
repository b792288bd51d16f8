"""What every benchmark shares: the embedded default's checkpoint, real audio clips, timing and memory readings."""

import json
import os
import resource
import statistics
import time

import numpy as np
import soundfile

import pipeline_speechllm  # noqa: F401 (registers the speechllm classes: no remote-code question in-repo)
from evaluation.arctic import ARCTIC

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORK_DIR = os.path.join(ROOT, "outputs", "bench")


def default_checkpoint() -> str:
    """The embedded default in outputs/bench/default, rebuilt when the shipped weights change."""
    from scripts.build_default_model import built_default

    return built_default(os.path.join(WORK_DIR, "default"))


def transcription_prompt(processor) -> str:
    """The chat prompt of a transcription request, with one audio placeholder (not yet expanded)."""
    from processing_speechllm import TRANSCRIBE_INSTRUCTION

    conversation = [{"role": "user", "content": [{"type": "audio", "audio": None}, {"type": "text", "text": TRANSCRIBE_INSTRUCTION}]}]
    return processor.render_conversation(conversation)[0]


def speech_clips(count: int, seconds=(2.0, 8.0), rate: int = 16000) -> list[np.ndarray]:
    """`count` real-speech clips from the CMU ARCTIC recording: cut or repeated (with short pauses) to lengths spread
    evenly over `seconds`."""
    recording, source_rate = soundfile.read(ARCTIC.audio, dtype="float32")
    assert source_rate == rate, source_rate
    pause = np.zeros(int(0.3 * rate), dtype=np.float32)
    long_take = np.concatenate([recording, pause] * 3)
    lengths = np.linspace(seconds[0], seconds[1], count)
    return [long_take[: int(length * rate)] for length in lengths]


def median_seconds(action, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        action()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_gib() -> float:
    """This process's own peak resident memory so far. On Linux from VmHWM: ru_maxrss carries the parent's peak
    into a spawned child (kept across exec), so a bench part started by a parent that had built the default
    reported the parent's 1.18 GiB instead of its own 0.81."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux, elsewhere a best effort


def print_result(result: dict):
    """Workers report to run.py as the last line of their output."""
    print(json.dumps(result), flush=True)


def last_json_line(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])
