"""The real CMU ARCTIC recording shipped in assets/: its path, transcript and spoken-content question, read from
assets/arctic.jsonl, the one place they are written (the evaluation command reads the same manifest)."""

import json
import os
from dataclasses import dataclass

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
MANIFEST = os.path.join(ASSETS, "arctic.jsonl")


@dataclass(frozen=True)
class Recording:
    audio: str
    transcript: str
    question: str
    answer: str


def read_recording(manifest: str) -> Recording:
    """The recording of a manifest holding one ASR row and one SQA row about the same audio."""
    with open(manifest) as handle:
        rows = {row["task"]: row for row in map(json.loads, filter(str.strip, handle))}
    asr, sqa = rows["asr"], rows["sqa"]
    return Recording(os.path.join(os.path.dirname(manifest), asr["audio"]), asr["transcript"], sqa["question"], sqa["answer"])


ARCTIC = read_recording(MANIFEST)
