"""Inference of the embedded default: LoRA attached against merged, then (merged) generate overhead against the bare
LLM, batching, real-time factor.

    python bench/inference.py [--quick]      (run.py calls these functions in a process of their own)
"""

import argparse
import os
import statistics
import time

import torch

from bench.common import ROOT, default_checkpoint, median_seconds, print_result, speech_clips, transcription_prompt

RATE = 16000


def transcription_inputs(processor, clips: list):
    return processor(text=[transcription_prompt(processor)] * len(clips), audio=clips, sampling_rate=RATE)


def fixed_length(new_tokens: int) -> dict:
    """Greedy decoding of exactly `new_tokens` tokens: both sides of a comparison do the same work."""
    return {"do_sample": False, "max_new_tokens": new_tokens, "min_new_tokens": new_tokens}


def generate_overhead(model, processor, clip, new_tokens: int, repeats: int) -> dict:
    """Speech-instruct generate minus its encoder+mapper time, against the bare LLM's generate on a text prompt of
    the same token count (the audio placeholders replaced by ordinary text tokens)."""
    inputs = transcription_inputs(processor, [clip])
    text_ids = inputs["input_ids"].clone()
    text_ids[text_ids == model.config.audio_token_id] = processor.tokenizer.convert_tokens_to_ids("the")
    with torch.inference_mode():
        speech = median_seconds(lambda: model.generate(**inputs, **fixed_length(new_tokens)), repeats)
        audio = median_seconds(lambda: model.get_audio_features(inputs["input_features"], inputs["input_features_mask"]), repeats)
        text = median_seconds(
            lambda: model.language_model.generate(
                input_ids=text_ids, attention_mask=inputs["attention_mask"], **fixed_length(new_tokens)
            ),
            repeats,
        )
    return {
        "prompt_tokens": int(text_ids.shape[1]),
        "speech_generate_s": speech,
        "encoder_and_mapper_s": audio,
        "text_generate_s": text,
        "generate_overhead": (speech - audio) / text,
    }


def batches_of(clips: list, batch_size: int) -> list[list]:
    return [clips[first : first + batch_size] for first in range(0, len(clips), batch_size)]


def throughput(model, processor, clips: list, batch_sizes, new_tokens: int) -> dict:
    """Utterances per second (features + generate of `new_tokens` tokens each) at each batch size."""
    rates = {}
    with torch.inference_mode():
        model.generate(**transcription_inputs(processor, clips[:1]), **fixed_length(2))  # warm-up
        for batch_size in batch_sizes:
            start = time.perf_counter()
            for batch in batches_of(clips, batch_size):
                model.generate(**transcription_inputs(processor, batch), **fixed_length(new_tokens))
            rates[batch_size] = len(clips) / (time.perf_counter() - start)
    return rates


def prefill_and_decode(model, processor, clips: list, batch_size: int, new_tokens: int) -> dict:
    """Seconds per utterance of the prefill (features + prompt, the first token) and of the later decode steps, at
    one batch size. Prefill is compute-bound (a batch of 8 prompts costs ~8 prompts) and decode is not, so their
    shares bound what batching can give on a given machine."""
    with torch.inference_mode():

        def generate_all(tokens):
            for batch in batches_of(clips, batch_size):
                model.generate(**transcription_inputs(processor, batch), **fixed_length(tokens))

        prefill = median_seconds(lambda: generate_all(1), 3) / len(clips)
        whole = median_seconds(lambda: generate_all(new_tokens), 3) / len(clips)
    return {"prefill_s": prefill, "decode_s": whole - prefill}


def batching_ceiling(one: dict, batched: dict) -> float:
    """The most batching could give here if its decode steps became free: batch-1 time over batched prefill."""
    return (one["prefill_s"] + one["decode_s"]) / batched["prefill_s"]


def real_time_factor(transcribe, clips: list) -> float:
    """Seconds of computing per second of audio, one clip at a time, end to end from the waveform."""
    transcribe(clips[0])  # warm-up
    start = time.perf_counter()
    for clip in clips:
        transcribe(clip)
    return (time.perf_counter() - start) / (sum(len(c) for c in clips) / RATE)


def whisper_window_cost(model, processor, clip, repeats: int) -> dict:
    """The encoder on the clip's valid frames (what the model runs) against Whisper's own 30 s window (what it ran
    before: transformers' WhisperEncoder accepts nothing else)."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    encoder = model.audio_tower.encoder
    valid = processor.extract_features([clip])
    window = processor.feature_extractor(clip, sampling_rate=RATE, padding="max_length", return_tensors="pt")
    with torch.inference_mode():
        valid_s = median_seconds(lambda: encoder(valid["input_features"], attention_mask=valid["input_features_mask"]), repeats)
        window_s = median_seconds(lambda: WhisperEncoder.forward(encoder, window["input_features"]), repeats)
    return {"encoder_valid_frames_s": valid_s, "encoder_30s_window_s": window_s, "whisper_window_speedup": window_s / valid_s}


def lora_merge_gain(attached, merged, processor, clips: list, new_tokens: int, rounds: int) -> dict:
    """Batch-1 generate with the LoRA adapters attached (as trained and saved) against folded into the LLM's weights
    (`merge_lora()`, what the inference entry points run), alternating rounds on the same clips; and whether the
    greedy tokens stay the same."""

    def generate_each(model):
        return [model.generate(**transcription_inputs(processor, [clip]), **fixed_length(new_tokens)) for clip in clips]

    with torch.inference_mode():
        same_tokens = sum(torch.equal(a, b) for a, b in zip(generate_each(attached), generate_each(merged)))
        times = {"attached": [], "merged": []}
        for _ in range(rounds):
            for name, model in (("attached", attached), ("merged", merged)):
                times[name].append(median_seconds(lambda: generate_each(model), 1, warmup=0))
    attached_s, merged_s = (statistics.median(times[name]) / len(clips) for name in ("attached", "merged"))
    return {
        "lora_attached_s": attached_s,
        "lora_merged_s": merged_s,
        "lora_merge_speedup": attached_s / merged_s,
        "lora_merge_same_tokens": f"{same_tokens} of {len(clips)}",
    }


def speechllm_transcriber(model, processor, max_new_tokens: int):
    def transcribe(clip):
        with torch.inference_mode():
            return model.generate(**transcription_inputs(processor, [clip]), do_sample=False, max_new_tokens=max_new_tokens)

    return transcribe


def whisper_transcriber(whisper_dir: str, max_new_tokens: int):
    """Whisper tiny.en with its own decoder and its own 30 s windows, as its users run it."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    whisper = WhisperForConditionalGeneration.from_pretrained(whisper_dir).eval()
    processor = WhisperProcessor.from_pretrained(whisper_dir)

    def transcribe(clip):
        features = processor(clip, sampling_rate=RATE, return_tensors="pt").input_features
        with torch.inference_mode():
            return whisper.generate(features, max_new_tokens=max_new_tokens)

    return transcribe


def run(quick: bool) -> dict:
    from conversion import parts
    from modeling_speechllm import SpeechLLMForConditionalGeneration
    from processing_speechllm import SpeechLLMProcessor

    torch.manual_seed(0)
    checkpoint = default_checkpoint()
    processor = SpeechLLMProcessor.from_pretrained(checkpoint)
    attached = SpeechLLMForConditionalGeneration.from_pretrained(checkpoint).eval()
    model = SpeechLLMForConditionalGeneration.from_pretrained(checkpoint).eval().merge_lora()
    clips = speech_clips(16)
    merge = lora_merge_gain(attached, model, processor, clips[::4], new_tokens=12, rounds=3 if quick else 5)
    del attached
    # Everything below measures the merged model, as evaluation.run and the demo run it.
    window = whisper_window_cost(model, processor, clips[8], repeats=3 if quick else 7)
    overhead = generate_overhead(model, processor, clips[8], new_tokens=16 if quick else 32, repeats=3 if quick else 7)
    rates = throughput(model, processor, clips, (1, 4, 8, 16), new_tokens=12 if quick else 24)
    split = {size: prefill_and_decode(model, processor, clips[:8], size, new_tokens=12 if quick else 24) for size in (1, 8)}
    rtf_clips = clips[::4] if quick else clips
    ours = real_time_factor(speechllm_transcriber(model, processor, 48), rtf_clips)
    whisper = real_time_factor(whisper_transcriber(parts.whisper_tiny_en(), 48), rtf_clips)
    return {
        **merge,
        **overhead,
        **window,
        "utterances_per_s": rates,
        "batch8_speedup": rates[8] / rates[1],
        "seconds_per_utterance": split,
        "batch8_ceiling": batching_ceiling(split[1], split[8]),
        "rtf": ours,
        "whisper_tiny_rtf": whisper,
        "rtf_clips": len(rtf_clips),
        "rtf_audio_s": sum(len(c) for c in rtf_clips) / RATE,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    os.chdir(ROOT)
    print_result(run(parser.parse_args().quick))
