"""Stage-A epoch with a cold feature cache (the encoder runs on every clip) against a warm one (frames read back).

    python bench/feature_cache.py --clips 16
"""

import argparse
import os
import shutil
import time

import soundfile
import torch

from bench.common import ARCTIC, WORK_DIR, default_checkpoint, print_result, speech_clips
from processing_speechllm import SpeechLLMProcessor
from training.mapper_pretraining import SpeechMapperForPretraining, StageACollator, fill_feature_cache


def write_clips(count: int) -> list[str]:
    directory = os.path.join(WORK_DIR, "clips")
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, clip in enumerate(speech_clips(count, seconds=(4.0, 8.0))):  # long enough for the whole sentence
        path = os.path.join(directory, f"clip-{count}-{i}-4to8s.wav")
        if not os.path.exists(path):
            soundfile.write(path, clip, 16000)
        paths.append(path)
    return paths


def epoch_seconds(model, optimizer, processor, checkpoint, sources, cache_dir, batch_size=8) -> float:
    """Fill the cache (whatever is missing) and run one epoch of stage-A steps over it."""
    start = time.perf_counter()
    feature_paths = fill_feature_cache(sources, checkpoint, model.config, processor, cache_dir)
    collate = StageACollator(processor.tokenizer)
    examples = [{"feature_path": path, "transcript": ARCTIC.transcript} for path in feature_paths]
    for first in range(0, len(examples), batch_size):
        optimizer.zero_grad()
        model(**collate(examples[first : first + batch_size])).loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def run(clips: int) -> dict:
    torch.manual_seed(0)
    checkpoint = default_checkpoint()
    processor = SpeechLLMProcessor.from_pretrained(checkpoint)
    model = SpeechMapperForPretraining.from_speechllm_checkpoint(checkpoint).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sources = write_clips(clips)
    cache_dir = os.path.join(WORK_DIR, "feature-cache")
    shutil.rmtree(cache_dir, ignore_errors=True)
    cold = epoch_seconds(model, optimizer, processor, checkpoint, sources, cache_dir)
    warm = epoch_seconds(model, optimizer, processor, checkpoint, sources, cache_dir)
    return {"clips": clips, "cold_epoch_s": cold, "warm_epoch_s": warm, "cache_speedup": cold / warm}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16)
    print_result(run(parser.parse_args().clips))
