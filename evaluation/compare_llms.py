"""The candidate LLMs of the multilingual default, side by side on the same inputs, before hours of training:
text-only translation into de/it/zh (chrF against the held-out synthetic references, target-language rate), greedy
decode speed, and the time of a LoRA training step.

    python -m evaluation.compare_llms [--sentences 100] [--output default_model/llm_comparison.json]   # resumable

The sentences are held-out texts (synthesis.genres' hold-out rule) whose three translations the data build kept. An
instruct candidate is asked through its chat template, a base one with a completion prompt ("English: ...
German:"), each its best zero-shot use.
"""

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from evaluation.language_id import adherence
from synthesis.translation import LANGUAGE_NAMES, LANGUAGES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Candidate:
    chat: bool  # instruction-tuned: asked through its chat template; else a completion prompt


# By part name (conversion.parts.PARTS).
CANDIDATES = {"qwen2.5-coder-0.5b-instruct": Candidate(chat=True), "gemma-3-270m": Candidate(chat=False)}


def held_out_sentences(count: int) -> list[dict]:
    """`count` held-out texts with kept de/it/zh translations, in hash order."""
    from synthesis.genres import corpus, hash_rank, held_out
    from synthesis.translation import read_translations

    translated = read_translations()
    rows = [translated[row["text"]] for row in corpus() if held_out(row) and row["text"] in translated]
    complete = [row for row in rows if all(language in row for language in LANGUAGES)]
    if len(complete) < count:
        raise ValueError(f"only {len(complete)} held-out texts have all three translations; run python -m synthesis.annotate")
    return sorted(complete, key=lambda row: hash_rank(row["text"]))[:count]


def prompt(tokenizer, candidate: Candidate, text: str, language: str) -> str:
    name = LANGUAGE_NAMES[language]
    if candidate.chat:
        request = f"Translate the following text from English into {name}. Output only the {name} translation.\n\n{text}"
        return tokenizer.apply_chat_template([{"role": "user", "content": request}], add_generation_prompt=True, tokenize=False)
    return f"Translate English into {name}.\nEnglish: {text}\n{name}:"


def translate(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int) -> tuple[list[str], int, float]:
    """Greedy outputs (first line), new tokens made, and seconds."""
    tokenizer.padding_side = "left"
    outputs, tokens, seconds = [], 0, 0.0
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        started = time.perf_counter()
        with torch.no_grad():
            generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                       stop_strings=["\n"], tokenizer=tokenizer)  # one line: a base model runs on
        seconds += time.perf_counter() - started
        new = generated[:, batch["input_ids"].shape[1] :]
        tokens += int((new != tokenizer.pad_token_id).sum())
        outputs += [text.strip().split("\n")[0].strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return outputs, tokens, seconds


def lora_step_seconds(model, tokenizer, texts: list[str], steps: int = 3) -> float:
    """Median seconds of forward + backward + update with LoRA (r 8, α 16, the recipe's) on 8 texts."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)
    tokenizer.padding_side = "right"
    batch = tokenizer(texts[:8], return_tensors="pt", padding=True)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        loss = peft_model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    peft_model.unload()
    return statistics.median(times)


def measure(name: str, sentences: list[dict], report: dict, save, batch_size: int = 8) -> dict:
    """Fill `report` (this candidate's entry, maybe half done by a killed run) language by language, calling `save`
    after each piece: a run killed part-way keeps what it measured and resumes after it."""
    from sacrebleu.metrics import CHRF
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conversion import parts

    candidate = CANDIDATES[name]
    directory = parts.part(name)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    report.update(parameters=sum(p.numel() for p in model.parameters()), vocabulary=model.config.vocab_size,
                  hidden_size=model.config.hidden_size)
    languages = report.setdefault("languages", {})
    for language in tqdm([lang for lang in LANGUAGES if lang not in languages], desc=name, unit="language"):
        prompts = [prompt(tokenizer, candidate, row["text"], language) for row in sentences]
        outputs, made, spent = translate(model, tokenizer, prompts, batch_size, max_new_tokens=96)
        languages[language] = {
            "chrf": CHRF().corpus_score(outputs, [[row[language] for row in sentences]]).score,
            "target_language_rate": adherence(outputs, language),
            "decode_tokens": made,
            "decode_seconds": spent,
            "examples": outputs[:2],
        }
        save()
    report["decode_tokens_per_second_batch8"] = sum(r["decode_tokens"] for r in languages.values()) / sum(
        r["decode_seconds"] for r in languages.values()
    )
    if "lora_step_seconds_batch8" not in report:
        report["lora_step_seconds_batch8"] = lora_step_seconds(model, tokenizer, [row["text"] for row in sentences])
        save()
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--output", default=os.path.join(ROOT, "default_model", "llm_comparison.json"))
    args = parser.parse_args()
    sentences = held_out_sentences(args.sentences)
    report = {"sentences": args.sentences, "candidates": {}}
    if os.path.exists(args.output):
        with open(args.output) as handle:
            previous = json.load(handle)
        if previous.get("sentences") == args.sentences:  # the same sentences: go on from what a killed run measured
            report = previous

    def save():
        with open(args.output + ".partial", "w") as handle:
            json.dump(report, handle, indent=1, ensure_ascii=False)
        os.replace(args.output + ".partial", args.output)

    for name in args.candidates:
        measure(name, sentences, report["candidates"].setdefault(name, {}), save)
    for name, result in report["candidates"].items():
        scores = ", ".join(f"{lang} chrF {r['chrf']:.1f} ({100 * r['target_language_rate']:.0f} % in {lang})" for lang, r in result["languages"].items())
        print(f"{name}: {scores}; {result['decode_tokens_per_second_batch8']:.1f} tokens/s; LoRA step {result['lora_step_seconds_batch8']:.2f} s")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
