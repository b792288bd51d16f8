"""Per-GPU memory of the model states of each training stage under DeepSpeed ZeRO-2 / ZeRO-3 (± CPU offload).

    python scripts/estimate_training_memory.py [--gpus 8] [--nodes 1]

Parameters are counted on the meta device from the default config (SeamlessM4T-v2-large speech encoder,
SpeechMapper, Llama-3.1-8B + LoRA r 8): nothing is allocated. A recipe's own stage: python -m training.plan FILE. Bytes per parameter, bf16 mixed precision with AdamW:
2 for every weight (frozen or not), +2 for a trainable weight's gradient, +12 for its fp32 master copy and two Adam
moments. ZeRO-2 partitions gradients and optimizer states over all GPUs; ZeRO-3 also the weights; offload moves the
optimizer states (and with ZeRO-3 the weights) to CPU memory. Activations come on top (they grow with batch × length
and shrink with gradient checkpointing); stage A holds only the mapper and the embedding table.
"""

import argparse

from configuration_speechllm import SpeechLLMConfig
from training.plan import ModuleCounts, memory_table_header, memory_table_line, meta_model, stage_parameters

STAGES = {"mapper": "A mapper (+ embedding table)", "text": "B text LoRA", "joint": "C joint (mapper + LoRA)"}


def default_stage_parameters() -> dict[str, tuple[int, int, int]]:
    """(replicated buffer elements, weights held, trainable weights) per stage, for the default config."""
    counts = ModuleCounts.of(meta_model(SpeechLLMConfig(), lora={"r": 8, "lora_alpha": 16}))
    return {name: stage_parameters(counts, stage) for stage, name in STAGES.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=8, help="GPUs per node")
    parser.add_argument("--nodes", type=int, default=1)
    args = parser.parse_args()
    gpus = args.gpus * args.nodes
    print(f"model-state memory per GPU (GiB), {gpus} GPUs in all, bf16 + AdamW; activations not included\n")
    print("\n".join(memory_table_header()))
    for stage, (replicated, held, trainable) in default_stage_parameters().items():
        print(memory_table_line(stage, replicated, held, trainable, gpus))


if __name__ == "__main__":
    main()
