"""Spoken clips kept in the repository as Opus, so that a new machine restores a build's speech in minutes instead of
speaking it again for hours (Kokoro costs ~0.3 s of CPU a second of audio; the v2 build's 4.3 h took 150 minutes).

A clip is stored under the hash of what decides its sound (text, voice, sampling rate), so a changed plan never reads
stale audio. What a build writes to disk is always the DECODED Opus, on the machine that spoke it too: every machine
trains on the same samples. At ~24 kbit/s wideband Opus keeps speech intelligible to Whisper (tests/test_synthesis.py).
"""

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import soundfile

from synthesis.jsonl import write_atomically

# libsndfile's Opus quality knob (0 best, 1 smallest); 0.93 is ~24 kbit/s for 16 kHz speech: ~11 MB an hour of audio
COMPRESSION_LEVEL = 0.93


class SpeechCache:
    def __init__(self, directory: str, sampling_rate: int):
        self.directory = directory
        self.sampling_rate = sampling_rate

    def path(self, text: str, voice_key: str) -> str:
        digest = hashlib.sha1(f"{self.sampling_rate}\n{voice_key}\n{text}".encode()).hexdigest()
        return os.path.join(self.directory, digest[:2], digest[2:16] + ".opus")

    def load(self, text: str, voice_key: str) -> np.ndarray | None:
        """The cached samples (float32, the cache's sampling rate), or None when this text in this voice is not kept."""
        path = self.path(text, voice_key)
        if not os.path.exists(path):
            return None
        samples, rate = soundfile.read(path, dtype="float32")
        if rate != self.sampling_rate:
            raise ValueError(f"{path} holds {rate} Hz audio, the build speaks at {self.sampling_rate} Hz")
        return samples

    def store(self, samples: np.ndarray, text: str, voice_key: str) -> np.ndarray:
        """Keeps the clip and returns what a later load gives back (the decoded Opus), for the build to write."""
        buffer = io.BytesIO()
        soundfile.write(buffer, samples, self.sampling_rate, format="OGG", subtype="OPUS", compression_level=COMPRESSION_LEVEL)
        write_atomically(self.path(text, voice_key), lambda temporary: Path(temporary).write_bytes(buffer.getvalue()))
        buffer.seek(0)
        decoded, _ = soundfile.read(buffer, dtype="float32")
        return decoded
