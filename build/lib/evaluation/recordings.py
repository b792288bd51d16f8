"""A long real recording made here: every real clip in assets/ joined, with a pause after each (tests and benchmarks
of long audio; the project has no real recording over a minute of its own)."""

import glob
import os

import numpy as np
import soundfile

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
RATE = 16000


def real_recording_with_pauses(pause_seconds: float = 0.6, rounds: int = 3) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Every real clip in assets/ (16 kHz, 48 s in all), `rounds` times over, joined with a pause after each (> 2
    minutes at 3 rounds); and the (start, end) samples of the pauses."""
    paths = sorted(glob.glob(os.path.join(ASSETS, "**", "*.wav"), recursive=True)) * rounds
    pieces, pauses, at = [], [], 0
    for path in paths:
        clip, rate = soundfile.read(path, dtype="float32")
        if rate != RATE:
            raise ValueError(f"{path} is {rate} Hz; the assets are kept at {RATE} Hz")
        pause = np.zeros(int(pause_seconds * RATE), dtype=np.float32)
        pieces += [clip, pause]
        pauses.append((at + len(clip), at + len(clip) + len(pause)))
        at += len(clip) + len(pause)
    return np.concatenate(pieces), pauses
