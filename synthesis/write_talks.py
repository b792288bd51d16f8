"""The LLM writes short talk scripts (fakACL's first step), cleaned into sentences and cached as JSONL.

    python -m synthesis.write_talks --output synthesis/talks.jsonl [--per_topic N] [--seed 0]
    python -m synthesis.write_talks --output talks.jsonl --llm_endpoint URL --llm_model NAME   # a served LLM writes

--per_topic: how many of topics.ANGLES each subfield is written from (at most all of them); the committed file has all.

Deterministic for a seed (one seed per talk), resumable (talks already in the file are kept), with a progress bar.
The file is the project's own generated text and is committed, so synthesis never needs the LLM again.
"""

import argparse
import json
import os
import re

import torch
from tqdm.auto import tqdm

from synthesis.endpoint import stops_with_one_line
from synthesis.llm import add_endpoint_options, endpoint_from_args
from synthesis.topics import ANGLES, SUBFIELDS

PROMPT = (
    "Write the first paragraph of a conference talk about {angle}. Write six plain, complete sentences in English. "
    "No lists, no hashtags, no greetings."
)
GREETING = re.compile(r"^(hello|hi|good (morning|afternoon|evening)|thank you|thanks|welcome|ladies)\b", re.I)
# The LLM sometimes talks about the writing task instead of giving the talk ("Here's your rewritten introduction").
ABOUT_THE_TASK = re.compile(r"\b(here's|here is|rewritten|rewrite|paragraph|sentences?|bullet|edits?|edited)\b", re.I)


def talk_requests(per_topic: int) -> list[dict]:
    if not 1 <= per_topic <= len(ANGLES):
        raise ValueError(f"per_topic must be between 1 and {len(ANGLES)} (the number of topics.ANGLES), got {per_topic}")
    requests = []
    for topic in SUBFIELDS:
        for number, angle in enumerate(ANGLES[:per_topic]):
            talk_id = f"{re.sub(r'[^a-z]+', '-', topic)}-{number}"
            requests.append({"id": talk_id, "topic": topic, "angle": angle.format(topic=topic)})
    return requests


ASCII_FOLDS = str.maketrans({"–": "-", "—": "-", "’": "'", "‘": "'", "“": '"', "”": '"', "…": "."})


def clean_sentences(text: str) -> list[str]:
    """Plain spoken-style sentences: no markup, hashtags, greetings or fragments; long ones split at ; and :."""
    text = re.sub(r"#\w+", " ", text.translate(ASCII_FOLDS))
    text = re.sub(r"[*_#`>\"]|\[.*?\]|\(.*?\)", " ", text)
    text = re.sub(r"\s*[;:]\s+|\s+-\s+", ". ", text)
    text = re.sub(r"\s+([.,!?])", r"\1", re.sub(r"\s+", " ", text))
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    kept = []
    for sentence in sentences:
        sentence = sentence.strip(" '")
        if sentence and sentence[0].islower():
            sentence = sentence[0].upper() + sentence[1:]
        words = sentence.split()
        if not (4 <= len(words) <= 35) or sentence[-1] not in ".!?" or GREETING.match(sentence) or ABOUT_THE_TASK.search(sentence):
            continue
        if not re.fullmatch(r"[A-Za-z0-9 ,.'?!%$-]+", sentence) or "http" in sentence:
            continue
        if sentence not in kept:
            kept.append(sentence)
    return kept


def generate(model, tokenizer, requests: list[dict], seed: int, max_new_tokens: int) -> list[str]:
    prompts = [
        tokenizer.apply_chat_template([{"role": "user", "content": PROMPT.format(angle=r["angle"])}], tokenize=False, add_generation_prompt=True)
        for r in requests
    ]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(
            **inputs, do_sample=True, temperature=0.7, top_p=0.9, repetition_penalty=1.2, max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def local_writer():
    """SmolLM2-135M-Instruct through transformers (sampled, with a repetition penalty)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conversion.parts import smollm2_135m_instruct

    path = smollm2_135m_instruct()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    return lambda requests, seed, max_new_tokens: generate(model, tokenizer, requests, seed, max_new_tokens)


def endpoint_writer(args):
    """The served LLM where --llm_endpoint is given (each talk sampled from its own seed), else None."""
    llm = endpoint_from_args(args)
    if llm is None:
        return None
    return lambda requests, seed, max_new_tokens: llm.reply(
        [PROMPT.format(angle=request["angle"]) for request in requests], max_new_tokens, temperature=0.7, seed=seed
    )


@stops_with_one_line
def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "talks.jsonl"))
    parser.add_argument("--per_topic", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=160)
    parser.add_argument("--limit", type=int, help="only the first N talks (of the subfields × angles in order)")
    add_endpoint_options(parser)
    args = parser.parse_args(argv)
    done = set()
    if os.path.exists(args.output):
        with open(args.output) as handle:
            done = {json.loads(line)["id"] for line in handle if line.strip()}
    todo = [r for r in talk_requests(args.per_topic)[: args.limit] if r["id"] not in done]
    print(f"{len(done)} talks already written, {len(todo)} to write")
    if not todo:
        return
    write = endpoint_writer(args) or local_writer()
    with open(args.output, "a") as handle, tqdm(total=len(todo), desc="writing talks", unit="talk") as progress:
        for start in range(0, len(todo), args.batch_size):
            batch = todo[start : start + args.batch_size]
            seed = args.seed * 100_003 + len(done) + start  # fixed per batch position: a resumed run draws the same
            for request, text in zip(batch, write(batch, seed, args.max_new_tokens)):
                handle.write(json.dumps({**request, "raw": text}) + "\n")
            handle.flush()
            progress.update(len(batch))


if __name__ == "__main__":
    main()
