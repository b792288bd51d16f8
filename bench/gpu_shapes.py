"""Real shapes on one GPU, random weights: SeamlessM4T-v2-large speech encoder + the 277M SpeechMapper +
Llama-3.1-8B (bf16, LoRA r 8): joint-stage training tokens/s and model-FLOPs utilisation against a measured matmul
ceiling; decode ms/token against the weight-bytes ÷ measured-bandwidth floor.

    python bench/gpu_shapes.py                       # on a GPU machine (the `device` tool), ~3 minutes
    python bench/gpu_shapes.py --device cpu --tiny   # the same code on tiny shapes: a smoke check, numbers meaningless

Never needed by CI. Prints one JSON line last; commit the numbers with date and device in bench/RESULTS.md.
"""

import argparse
import json
import time

import torch

from configuration_speechllm import SpeechLLMConfig
from modeling_speechllm import SpeechLLMForConditionalGeneration

TINY = {
    "encoder_config": {"model_type": "seamless_m4t_v2", "hidden_size": 64, "speech_encoder_layers": 2,
                       "speech_encoder_attention_heads": 4, "speech_encoder_intermediate_size": 128,
                       "feature_projection_input_dim": 160, "vocab_size": 100, "t2u_vocab_size": 100},
    "text_config": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000},
    "encoder_layer": 2, "mapper_widths": [64, 96], "mapper_ffn_dim": 128, "mapper_heads": 4, "mapper_layers_per_block": 1,
}  # fmt: skip
FEATURES_PER_SECOND = 50  # SeamlessM4T's extractor: 100 fbank frames/s stacked in pairs


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(action, device, repeats: int) -> float:
    action()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        action()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def matmul_ceiling(device, dtype, size: int) -> float:
    """FLOP/s of one large square matmul: the most this device does in practice."""
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    return 2 * size**3 / timed(lambda: a @ b, device, repeats=20)


def copy_bandwidth(device, megabytes: int) -> float:
    """Bytes/s of a device-to-device copy (read + write)."""
    source = torch.empty(megabytes * 2**20, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    return 2 * source.numel() / timed(lambda: target.copy_(source), device, repeats=20)


def build(tiny: bool, device, dtype) -> SpeechLLMForConditionalGeneration:
    config = SpeechLLMConfig(**TINY) if tiny else SpeechLLMConfig()
    config.audio_token_id = config.text_config.vocab_size - 2
    config.mapper_pad_token_id = config.text_config.vocab_size - 1
    with torch.device("meta"):
        model = SpeechLLMForConditionalGeneration(config)
    model.to_empty(device=device)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(std=0.02)
    model.to(dtype)
    model.enable_lora()
    return model


def joint_batch(model, batch: int, seconds: float, answer_tokens: int, device) -> dict:
    """A batch like the joint stage's: audio placeholders expanded, a short prompt, the answer as labels."""
    config = model.config
    frames = int(seconds * FEATURES_PER_SECOND)
    features = torch.randn(batch, frames, 160, device=device, dtype=next(model.parameters()).dtype)
    mask = torch.ones(batch, frames, dtype=torch.long, device=device)
    audio_tokens = int(model.get_audio_features(features[:1], mask[:1]).lengths[0])
    prompt = torch.randint(100, config.audio_token_id - 1, (batch, 24), device=device)
    answer = torch.randint(100, config.audio_token_id - 1, (batch, answer_tokens), device=device)
    audio = torch.full((batch, audio_tokens), config.audio_token_id, device=device)
    input_ids = torch.cat([prompt[:, :12], audio, prompt[:, 12:], answer], dim=1)
    labels = torch.cat([torch.full_like(input_ids[:, :-answer_tokens], -100), answer], dim=1)
    return {"input_ids": input_ids, "labels": labels, "input_features": features, "input_features_mask": mask,
            "attention_mask": torch.ones_like(input_ids), "audio_tokens": audio_tokens}  # fmt: skip


def parameters_of(module) -> int:
    return sum(p.numel() for p in module.parameters())


def training_flops(model, batch: dict) -> float:
    """Matmul FLOPs of one joint step: encoder forward only (frozen); mapper forward + backward; LLM forward + the
    backward to its activations (its weights are frozen; LoRA's own gradients are negligible). 2·N per token forward."""
    rows = batch["input_ids"].shape[0]
    encoder_frames = batch["input_features"].shape[1] // model.config.encoder_feature_stride
    mapper_frames = encoder_frames // model.config.frame_average
    llm = parameters_of(model.language_model) - model.get_input_embeddings().weight.numel()
    return rows * (
        2 * parameters_of(model.audio_tower) * encoder_frames
        + 6 * parameters_of(model.multi_modal_projector) * mapper_frames
        + 4 * llm * batch["input_ids"].shape[1]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), torch.bfloat16
    torch.manual_seed(0)
    model = build(args.tiny, device, dtype)
    batch = joint_batch(model, args.batch, args.seconds, answer_tokens=48, device=device)
    inputs = {k: v for k, v in batch.items() if k != "audio_tokens"}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        model(**inputs).loss.backward()
        optimizer.step()

    model.train()
    step_s = timed(train_step, device, args.steps)
    ceiling = matmul_ceiling(device, dtype, 1024 if args.tiny else 8192)
    flops = training_flops(model, batch)

    model.eval()
    one = {k: v[:1] for k, v in inputs.items() if k != "labels"}
    with torch.inference_mode():
        def generate(n):
            return lambda: model.generate(**one, do_sample=False, max_new_tokens=n, min_new_tokens=n)

        short, long = timed(generate(8), device, 3), timed(generate(72), device, 3)
    decode_s = (long - short) / 64
    weight_bytes = sum(p.numel() * p.element_size() for p in model.language_model.parameters())
    bandwidth = copy_bandwidth(device, 64 if args.tiny else 4096)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "shapes": "tiny" if args.tiny else "SeamlessM4T-v2-large encoder + 277M SpeechMapper + Llama-3.1-8B, bf16, LoRA r 8",
        "batch": args.batch, "audio_seconds": args.seconds, "sequence_tokens": int(batch["input_ids"].shape[1]),
        "audio_tokens": batch["audio_tokens"], "step_s": step_s,
        "training_tokens_per_s": batch["input_ids"].numel() / step_s,
        "model_tflops_per_s": flops / step_s / 1e12, "matmul_ceiling_tflops_per_s": ceiling / 1e12,
        "mfu_vs_measured_ceiling": flops / step_s / ceiling,
        "decode_ms_per_token": 1e3 * decode_s, "llm_weight_gb": weight_bytes / 1e9,
        "copy_bandwidth_gb_per_s": bandwidth / 1e9, "decode_floor_ms_per_token": 1e3 * weight_bytes / bandwidth,
        "decode_vs_floor": decode_s / (weight_bytes / bandwidth),
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
