"""Per-GPU memory of the model states of each training stage under DeepSpeed ZeRO-2 / ZeRO-3 (± CPU offload).

    python scripts/estimate_training_memory.py [--gpus 8] [--nodes 1]

Parameters are counted on the meta device from the default config (SeamlessM4T-v2-large speech encoder,
SpeechMapper, Llama-3.1-8B + LoRA r 8): nothing is allocated. Bytes per parameter, bf16 mixed precision with AdamW:
2 for every weight (frozen or not), +2 for a trainable weight's gradient, +12 for its fp32 master copy and two Adam
moments. ZeRO-2 partitions gradients and optimizer states over all GPUs; ZeRO-3 also the weights; offload moves the
optimizer states (and with ZeRO-3 the weights) to CPU memory. Activations come on top (they grow with batch × length
and shrink with gradient checkpointing); stage A holds only the mapper and the embedding table.
"""

import argparse

import torch

from configuration_speechllm import SpeechLLMConfig
from modeling_speechllm import SpeechLLMForConditionalGeneration

GIB = 1024**3


def count(parameters) -> int:
    return sum(p.numel() for p in parameters)


def stage_parameters() -> dict[str, tuple[int, int, int]]:
    """(replicated buffer elements, weights held, trainable weights) per stage, for the default config."""
    with torch.device("meta"):
        model = SpeechLLMForConditionalGeneration(SpeechLLMConfig())
        model.enable_lora()
    encoder = count(model.audio_tower.parameters())
    mapper = count(model.multi_modal_projector.parameters())
    lora = count(p for n, p in model.named_parameters() if "lora_" in n)
    llm = count(model.language_model.parameters()) - lora
    embedding = model.get_input_embeddings().weight.numel()
    return {
        "A mapper (+ embedding table)": (embedding, mapper, mapper),  # the table is a buffer: every GPU holds it
        "B text LoRA": (0, encoder + mapper + llm + lora, lora),
        "C joint (mapper + LoRA)": (0, encoder + mapper + llm + lora, mapper + lora),
    }


def per_gpu_bytes(replicated: int, held: int, trainable: int, gpus: int, zero: int, offload: bool) -> float:
    weights = 2 * held / (gpus if zero == 3 else 1)
    gradients = 2 * trainable / gpus
    optimizer = 0 if offload else 12 * trainable / gpus
    if zero == 3 and offload:
        weights = 0
    return 2 * replicated + weights + gradients + optimizer


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=8, help="GPUs per node")
    parser.add_argument("--nodes", type=int, default=1)
    args = parser.parse_args()
    gpus = args.gpus * args.nodes
    print(f"model-state memory per GPU (GiB), {gpus} GPUs in all, bf16 + AdamW; activations not included\n")
    print("| stage | weights held | trainable | ZeRO-2 | ZeRO-2 + offload | ZeRO-3 | ZeRO-3 + offload |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for stage, (replicated, held, trainable) in stage_parameters().items():
        cells = [
            per_gpu_bytes(replicated, held, trainable, gpus, zero, offload) / GIB
            for zero in (2, 3)
            for offload in (False, True)
        ]
        total = (replicated + held) / 1e9
        print(f"| {stage} | {total:.2f} B | {trainable / 1e6:.0f} M | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
