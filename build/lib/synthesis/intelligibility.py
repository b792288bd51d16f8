"""Which voices are intelligible enough to ship: each candidate voice speaks fixed test sentences, Whisper tiny.en
(converted from its pip package) transcribes them, and the WER after Whisper's normaliser is recorded.

    python -m synthesis.intelligibility [--voices kokoro] [--limit N]

Measurements go to synthesis/voice_intelligibility.json ({voice name: WER}), written after every voice, so a killed
run resumes where it stopped; a voice already measured is not measured again. `synthesis.speak.shipped_voices()`
keeps the voices at or below MAX_WER: a voice above it is dropped, not shipped.
"""

import argparse
import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from synthesis.jsonl import write_atomically
from synthesis.speak import MAX_WER, MEASUREMENTS, Speaker, candidate_voices, read_measurements

# Everyday sentences with numbers, names and a question: not the talks the data is made of.
TEST_SENTENCES = (
    "We present a simple method that translates speech directly into text.",
    "My sister moved to Chicago last year, and she loves her new job at the hospital.",
    "Could you tell me where the nearest train station is, please?",
)


def write_measurements(measurements: dict[str, float], path: str = MEASUREMENTS):
    write_atomically(path, lambda temporary: Path(temporary).write_text(json.dumps(dict(sorted(measurements.items())), indent=1) + "\n"))


def voice_wer(speaker, transcriber, voice, sentences=TEST_SENTENCES) -> float:
    """WER (Whisper normaliser, pooled over the sentences) of Whisper's transcripts of the voice's speech."""
    from evaluation.run import load_metric

    heard = transcriber([speaker.speak(sentence, voice) for sentence in sentences])
    return load_metric("normalised_wer").compute(predictions=heard, references=list(sentences))["wer"]


def measure(voices, path: str = MEASUREMENTS) -> dict[str, float]:
    """Measure the voices not yet in `path`; returns every measurement."""
    from conversion.parts import whisper_tiny_en
    from evaluation.run import WhisperTranscriber

    measurements = read_measurements(path)
    todo = [voice for voice in voices if voice.key not in measurements]
    print(f"{len(voices) - len(todo)} of {len(voices)} voices already measured, {len(todo)} to measure")
    speaker, transcriber = Speaker(), WhisperTranscriber(whisper_tiny_en())
    for voice in tqdm(todo, desc="measuring voices", unit="voice"):
        measurements[voice.key] = round(voice_wer(speaker, transcriber, voice), 4)
        write_measurements(measurements, path)
    return measurements


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", choices=("all", "kokoro", "piper", "espeak"), default="all")
    parser.add_argument("--limit", type=int, help="measure at most this many voices (a quick look)")
    args = parser.parse_args()
    voices = [v for v in candidate_voices() if args.voices in ("all", v.engine)][: args.limit]
    started = time.perf_counter()
    measurements = measure(voices)
    kept = [v for v in voices if measurements[v.key] <= MAX_WER]
    print(f"{len(kept)} of {len(voices)} voices at or below {MAX_WER:.0%} WER ({time.perf_counter() - started:.0f} s)")
    for voice in voices:
        if measurements[voice.key] > MAX_WER:
            print(f"dropped {voice.key}: WER {measurements[voice.key]:.1%}")


if __name__ == "__main__":
    main()
