"""Long audio on the embedded default: how many minutes fit in one prompt, and the real-time factor of a long real
recording segment by segment (batch 1 and 8) and in one prompt, beside the same speech as separate clips.

    python bench/long_recordings.py [--rounds 3] [--max-new-tokens 100]

The recording is every real clip in assets/ joined with pauses (`evaluation.recordings`, ~145 s at 3 rounds). The
minutes per prompt are counted by the processor on a minute of audio, against each LLM's context: the embedded
default's, and Llama-3.1-8B's with the papers' Seamless encoder and 8× mapper (the shapes, no weights).
Prints one JSON object as its last line.
"""

import argparse
import os
import time

import numpy as np

from bench.common import ROOT, default_checkpoint, print_result
from evaluation.recordings import RATE, real_recording_with_pauses

LLAMA_31_8B_CONTEXT = 131072  # max_position_embeddings of Llama-3.1-8B-Instruct


def tokens_per_minute(processor) -> float:
    """Audio placeholders one minute of audio takes in a prompt, as the processor counts them (window by window)."""
    minute = np.zeros(60 * processor.sampling_rate, dtype=np.float32)
    return float(processor.extract_windowed_features([minute])["num_audio_tokens"][0])


def minutes_per_prompt(processor, context: int) -> dict:
    per_minute = tokens_per_minute(processor)
    return {"audio_tokens_per_minute": per_minute, "context": context, "minutes": context / per_minute}


def paper_shapes_processor():
    """The papers' audio side (SeamlessM4T-v2 features, layer outputs averaged in pairs, two stride-2 mapper blocks)
    around a tiny tokenizer: counting placeholders needs no weights."""
    from scripts.make_tiny_checkpoint import build_tiny

    processor = build_tiny("seamless")[1]
    processor.max_audio_seconds = 60.0
    return processor


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def run(rounds: int, max_new_tokens: int) -> dict:
    from transformers import pipeline

    pipe = pipeline("speech-instruct", model=default_checkpoint())
    pipe.model.merge_lora()
    context = pipe.model.config.text_config.max_position_embeddings
    fits = {"default": minutes_per_prompt(pipe.processor, context),
            "llama_3_1_8b_paper_shapes": minutes_per_prompt(paper_shapes_processor(), LLAMA_31_8B_CONTEXT)}
    audio, pauses = real_recording_with_pauses(rounds=rounds)
    seconds = len(audio) / RATE
    clip_bounds = [(0 if i == 0 else pauses[i - 1][1], end) for i, (end, _) in enumerate(pauses)]
    clips = [audio[start:end] for start, end in clip_bounds]
    common = dict(sampling_rate=RATE, max_new_tokens=max_new_tokens)
    pipe(clips[0], task="transcribe", **common)  # warm-up
    times = {}
    for batch_size in (1, 8):
        times[f"segments_batch{batch_size}"], result = timed(
            lambda: pipe(audio, task="transcribe", return_timestamps=True, batch_size=batch_size, **common))
    segments = len(result["chunks"])
    times["clips_batch8"], _ = timed(lambda: pipe(clips, task="transcribe", batch_size=8, **common))
    times["one_prompt_question"], answer = timed(
        lambda: pipe(audio, instruction="What is this recording about?", sampling_rate=RATE, max_new_tokens=48))
    return {
        "minutes_per_prompt": fits,
        "audio_seconds": seconds,
        "segments": segments,
        "clips": len(clips),
        "seconds": times,
        "rtf": {name: taken / seconds for name, taken in times.items()},
        "segments_batch8_speedup": times["segments_batch1"] / times["segments_batch8"],
        "segments_vs_clips_batch8": times["segments_batch8"] / times["clips_batch8"],
        "one_prompt_answer": answer,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="how many times the assets' clips are joined")
    parser.add_argument("--max-new-tokens", type=int, default=100)
    args = parser.parse_args()
    os.chdir(ROOT)
    print_result(run(args.rounds, args.max_new_tokens))
