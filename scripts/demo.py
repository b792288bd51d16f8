"""The main job: load a speechllm checkpoint and run `pipeline("speech-instruct")` on a recording.

    python scripts/demo.py [--checkpoint DIR] [--audio FILE]

Without --checkpoint it builds the tiny RANDOM checkpoint (scripts/make_tiny_checkpoint.py) into
outputs/tiny-checkpoint: it shows the whole path working end to end, but its answers are noise.
Without --audio it writes a short generated test signal to outputs/demo.wav.
"""

import argparse
import os
import sys

import numpy as np
import soundfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def generated_audio(path: str, seconds: float = 2.0, rate: int = 16000) -> str:
    """A vowel-like signal (harmonics with a moving pitch): a stand-in recording that needs no file."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2)
    soundfile.write(path, (0.2 * signal).astype(np.float32), rate)
    return path


def tiny_checkpoint(path: str) -> str:
    from make_tiny_checkpoint import build_tiny

    if not os.path.exists(os.path.join(path, "config.json")):
        model, processor = build_tiny("seamless")
        model.save_pretrained(path)
        processor.save_pretrained(path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a speechllm checkpoint directory (default: tiny random one)")
    parser.add_argument("--audio", help="a recording to use (default: a generated test signal)")
    parser.add_argument("--question", default="What is the speaker talking about?")
    parser.add_argument("--max-new-tokens", type=int, default=30)
    args = parser.parse_args()

    os.makedirs(os.path.join(ROOT, "outputs"), exist_ok=True)
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = tiny_checkpoint(os.path.join(ROOT, "outputs", "tiny-checkpoint"))
        print(f"Using the tiny RANDOM checkpoint in {checkpoint}: its outputs below are noise, not answers.")
    audio = args.audio or generated_audio(os.path.join(ROOT, "outputs", "demo.wav"))

    from transformers import pipeline

    pipe = pipeline("speech-instruct", model=checkpoint, trust_remote_code=True)
    duration = soundfile.info(audio).duration
    print(f"audio: {audio} ({duration:.2f} s)")
    requests = {
        "transcription": dict(task="transcribe"),
        f"answer to {args.question!r}": dict(task="answer", question=args.question),
        "translation (de)": dict(task="translate", target_language="de"),
    }
    for label, request in requests.items():
        print(f"{label}: {pipe(audio, max_new_tokens=args.max_new_tokens, **request)!r}")


if __name__ == "__main__":
    main()
