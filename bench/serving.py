"""Serving throughput of the embedded default: vLLM's OpenAI server at 1, 8 and 32 concurrent requests against the HF
pipeline at batch 1 and 8, side by side in one run, on the same real-speech clips and the same greedy tokens.

    python -m bench.serving [--requests 32] [--max-new-tokens 48] [--dtype float32]

Throughput is seconds of audio transcribed per wall-clock second; time to first token (TTFT) is read from the
server's stream. The pipeline runs while the server sits idle, and the other way round. Both run float32 with the
LoRA merged, so they produce the same tokens (counted below) and the ratio compares engines, not precision.
"""

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import WORK_DIR, default_checkpoint, speech_clips
from processing_speechllm import TRANSCRIBE_INSTRUCTION

RATE = 16000
CONCURRENCY = (1, 8, 32)


def merged_pipeline(checkpoint: str):
    from transformers import pipeline

    pipe = pipeline("speech-instruct", model=checkpoint, trust_remote_code=True)
    pipe.model.merge_lora()
    return pipe


def pipeline_throughput(pipe, clips: list, batch_size: int, max_new_tokens: int) -> dict:
    pipe(clips[0], sampling_rate=RATE, task="transcribe", max_new_tokens=4)  # warm-up
    start = time.perf_counter()
    texts = pipe(clips, sampling_rate=RATE, task="transcribe", max_new_tokens=max_new_tokens, batch_size=batch_size)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "audio_s_per_s": audio_seconds(clips) / wall, "texts": texts}


def audio_seconds(clips: list) -> float:
    return sum(len(clip) for clip in clips) / RATE


def streamed_request(client, clip, max_new_tokens: int) -> tuple[str, float]:
    """(text, seconds to its first content token) of one streamed chat request."""
    from serving.client import audio_message

    start = time.perf_counter()
    first, pieces = None, []
    stream = client.chat.completions.create(
        model="speechllm", messages=[audio_message(clip, TRANSCRIBE_INSTRUCTION)], max_tokens=max_new_tokens, stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.perf_counter() - start
            pieces.append(chunk.choices[0].delta.content)
    return "".join(pieces), first if first is not None else time.perf_counter() - start


def server_throughput(client, clips: list, concurrency: int, max_new_tokens: int) -> dict:
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda clip: streamed_request(client, clip, max_new_tokens), clips))
    wall = time.perf_counter() - start
    ttfts = [ttft for _, ttft in answers]
    return {
        "wall_s": wall,
        "audio_s_per_s": audio_seconds(clips) / wall,
        "ttft_median_s": statistics.median(ttfts),
        "ttft_max_s": max(ttfts),
        "texts": [text for text, _ in answers],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=32, help="clips per measurement (batch 1 and 1 concurrent: a quarter)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    from openai import OpenAI

    from serving.client import Server
    from serving.serve import exported_checkpoint

    checkpoint = default_checkpoint()
    clips = speech_clips(args.requests, seconds=(2.0, 8.0))
    sequential = clips[::4]  # the same spread of lengths, a quarter of the count: batch 1 is slow
    results = {"requests": args.requests, "max_new_tokens": args.max_new_tokens, "dtype": args.dtype}
    pipe = merged_pipeline(checkpoint)  # loaded once for both batch sizes
    results["pipeline_batch_1"] = pipeline_throughput(pipe, sequential, 1, args.max_new_tokens)
    results["pipeline_batch_8"] = pipeline_throughput(pipe, clips, 8, args.max_new_tokens)
    del pipe  # its memory is the server's next
    model_dir = exported_checkpoint(checkpoint, f"{WORK_DIR}/serve")
    with Server(model_dir, dtype=args.dtype, log_path=f"{WORK_DIR}/serving-server.log") as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=900)
        streamed_request(client, clips[0], 4)  # warm-up
        for concurrency in CONCURRENCY:
            subset = sequential if concurrency == 1 else clips
            results[f"vllm_{concurrency}_concurrent"] = server_throughput(client, subset, concurrency, args.max_new_tokens)
    reference = results["pipeline_batch_8"]["texts"]
    summary = {
        "vllm_8_vs_pipeline_batch_8": results["vllm_8_concurrent"]["audio_s_per_s"] / results["pipeline_batch_8"]["audio_s_per_s"],
        "pipeline_batch_8_vs_1": results["pipeline_batch_8"]["audio_s_per_s"] / results["pipeline_batch_1"]["audio_s_per_s"],
        "vllm_8_vs_1": results["vllm_8_concurrent"]["audio_s_per_s"] / results["vllm_1_concurrent"]["audio_s_per_s"],
        "same_text_vllm_8_as_pipeline_8": sum(a.strip() == b.strip() for a, b in zip(results["vllm_8_concurrent"]["texts"], reference)),
    }  # fmt: skip
    for name, measured in results.items():
        if isinstance(measured, dict):
            ttft = f", TTFT median {measured['ttft_median_s']:.2f} s (max {measured['ttft_max_s']:.2f})" if "ttft_median_s" in measured else ""
            print(f"{name:24s} {measured['audio_s_per_s']:6.2f} audio s/s  ({measured['wall_s']:.1f} s wall{ttft})")
    print(f"vLLM at 8 concurrent vs the pipeline at batch 8: {summary['vllm_8_vs_pipeline_batch_8']:.2f}x (goal >= 1.5x); "
          f"same transcript in {summary['same_text_vllm_8_as_pipeline_8']} of {len(reference)}")  # fmt: skip
    for measured in results.values():
        if isinstance(measured, dict):
            measured.pop("texts")
    print(json.dumps({**summary, **results}))


if __name__ == "__main__":
    main()
