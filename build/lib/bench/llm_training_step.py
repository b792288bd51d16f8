"""One LoRA training step through a checkpoint's LLM, three ways side by side: fp32 with the LM's own forward
(logits at every position), bf16 autocast likewise, and bf16 with the output layer run on the answer positions only
(what SpeechLLMForConditionalGeneration does in training).

    python bench/llm_training_step.py --model DIR [--batch 8] [--prompt_tokens 85] [--answer_tokens 25] [--rounds 3]

Stage B/C cost is the LLM's: a batch of `batch` rows of prompt + answer tokens (labels on the answer), LoRA r 8 on
every projection, forward + backward + AdamW step. The rounds alternate the variants so that the machine's noise
falls on all. Prints one JSON line: median seconds per step of each, ratios to fp32, and the losses (bf16 changes
the numbers a little, not the loss's scale). On a CPU with AMX (Sapphire Rapids or later) bf16 matmuls run several
times faster; without it, bf16 autocast on this project's earlier machine was slower (bench/RESULTS.md).
"""

import argparse
import json
import statistics
import time

import torch

from modeling_speechllm import SpeechLLMForConditionalGeneration

VARIANTS = ("fp32", "bf16", "bf16_answer_only")


def step(model, optimizer, batch, variant: str) -> float:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant != "fp32"):
        embeds = model.get_input_embeddings()(batch["input_ids"])
        if variant == "bf16_answer_only":
            loss = model.answer_only_lm_forward(embeds, None, None, batch["labels"]).loss
        else:
            loss = model.language_model(inputs_embeds=embeds, labels=batch["labels"]).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt_tokens", type=int, default=85)
    parser.add_argument("--answer_tokens", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = SpeechLLMForConditionalGeneration.from_pretrained(args.model).enable_lora().train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)  # lr 0: same weights each round
    width = args.prompt_tokens + args.answer_tokens
    input_ids = torch.randint(0, 30000, (args.batch, width))
    labels = input_ids.clone()
    labels[:, : args.prompt_tokens] = -100
    batch = {"input_ids": input_ids, "labels": labels}
    times, losses = {variant: [] for variant in VARIANTS}, {}
    for variant in VARIANTS:  # warm-up
        step(model, optimizer, batch, variant)
    for _ in range(args.rounds):
        for variant in VARIANTS:
            started = time.perf_counter()
            losses[variant] = step(model, optimizer, batch, variant)
            times[variant].append(time.perf_counter() - started)
    seconds = {variant: statistics.median(times[variant]) for variant in VARIANTS}
    print(json.dumps({"model": args.model, "batch": args.batch, "tokens": width, "threads": torch.get_num_threads(),
                      **{f"{v}_s": round(seconds[v], 2) for v in VARIANTS},
                      **{f"fp32_over_{v}": round(seconds["fp32"] / seconds[v], 2) for v in VARIANTS[1:]},
                      **{f"loss_{v}": round(losses[v], 4) for v in VARIANTS}}))


if __name__ == "__main__":
    main()
