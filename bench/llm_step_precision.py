"""One LoRA training step through a checkpoint's LLM in fp32 and under bf16 autocast, measured side by side.

    python bench/llm_step_precision.py --model DIR [--batch 8] [--prompt_tokens 85] [--answer_tokens 25] [--rounds 3]

Stage B/C cost is the LLM's: a batch of `batch` rows of prompt + answer tokens (labels on the answer), LoRA r 8 on
every projection, forward + backward + AdamW step. The rounds alternate fp32 and bf16 so that the machine's noise
falls on both. Prints one JSON line: median seconds per step of each, their ratio, and the two losses (bf16 changes
the numbers a little, not the loss's scale). On a CPU with AMX (Sapphire Rapids or later) bf16 matmuls run several
times faster; without it, bf16 autocast on this project's earlier machine was slower (bench/RESULTS.md).
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_speechllm import SpeechLLMForConditionalGeneration  # noqa: E402

def step(model, optimizer, batch, bf16: bool) -> float:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model.language_model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss)


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
    times, losses = {"fp32": [], "bf16": []}, {}
    for precision in ("fp32", "bf16"):  # warm-up
        step(model, optimizer, batch, precision == "bf16")
    for _ in range(args.rounds):
        for precision in ("fp32", "bf16"):
            started = time.perf_counter()
            losses[precision] = step(model, optimizer, batch, precision == "bf16")
            times[precision].append(time.perf_counter() - started)
    fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    print(json.dumps({"model": args.model, "batch": args.batch, "tokens": width, "fp32_s": round(fp32, 2),
                      "bf16_s": round(bf16, 2), "fp32_over_bf16": round(fp32 / bf16, 2),
                      "loss_fp32": round(losses["fp32"], 4), "loss_bf16": round(losses["bf16"], 4),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
