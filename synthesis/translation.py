"""Synthetic translations into German, Italian and Chinese (the papers' "synthetic MT targets"), by an offline LLM.

    python -m synthesis.translation compare [--sentences 100]     # the candidate translators side by side
    python -m synthesis.translation build --translator NAME [--texts FILE]   # fill synthesis/translations.jsonl

A translator is an instruct LLM converted from its pip package (conversion/parts.py), run by CTranslate2 (int8,
batched greedy decoding: several times faster than transformers on CPU). Each output is checked as the 2026 system
filters with reference-free QE, here with what runs offline: its language (langid), its length against the source's,
and back-translation agreement (chrF of the English back-translation against the source). Kept translations go to
synthesis/translations.jsonl, one object per text {"text", "de", "it", "zh"} (a language whose translation failed
the checks is absent), appended as they come, so a killed run resumes where it stopped.
"""

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass

from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TRANSLATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "translations.jsonl")
LANGUAGES = ("de", "it", "zh")
LANGUAGE_NAMES = {"de": "German", "it": "Italian", "zh": "Chinese", "en": "English"}
# Characters of translation per character of English: measured ranges are ~1.0-1.4 for de/it and ~0.25-0.45 for zh;
# a translation outside [low, high] is cut short or runs on.
LENGTH_RATIO = {"de": (0.6, 2.0), "it": (0.6, 2.0), "zh": (0.12, 0.9)}
MIN_BACK_CHRF = 35.0
HELD_OUT_FRACTION = 0.1  # as synthesis.build_dataset's default split


@dataclass(frozen=True)
class Check:
    language: str  # langid's guess
    length_ratio: float
    back_chrf: float

    def problem(self, target: str) -> str:
        """Why the translation is dropped ("" when kept)."""
        low, high = LENGTH_RATIO[target]
        if self.language != target:
            return "wrong language"
        if not low <= self.length_ratio <= high:
            return "length"
        if self.back_chrf < MIN_BACK_CHRF:
            return "back-translation disagrees"
        return ""


class Translator:
    """An instruct LLM (a converted pip part) translating with its own chat template, greedy, batched."""

    def __init__(self, model_dir: str, ct2_dir: str, threads: int = 0):
        import ctranslate2
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if not os.path.exists(os.path.join(ct2_dir, "model.bin")):
            convert_to_ctranslate2(model_dir, ct2_dir)
        self.generator = ctranslate2.Generator(ct2_dir, device="cpu", compute_type="int8", intra_threads=threads)
        self.end_tokens = [t for t in (self.tokenizer.eos_token, "<|im_end|>", "<end_of_turn>") if t in self.tokenizer.get_vocab()]

    def prompt_tokens(self, text: str, target: str) -> list[str]:
        instruction = (
            f"Translate the following text from English into {LANGUAGE_NAMES[target]}. "
            f"Output only the {LANGUAGE_NAMES[target]} translation and nothing else.\n\n{text}"
        )
        prompt = self.tokenizer.apply_chat_template([{"role": "user", "content": instruction}], add_generation_prompt=True, tokenize=False)
        return self.tokenizer.convert_ids_to_tokens(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def __call__(self, texts: list[str], target: str, batch_size: int = 16) -> list[str]:
        prompts = [self.prompt_tokens(text, target) for text in texts]
        budget = [int(len(self.tokenizer(text)["input_ids"]) * (2.5 if target != "en" else 1.8)) + 16 for text in texts]
        results = self.generator.generate_batch(
            prompts, max_batch_size=batch_size, max_length=max(budget), sampling_topk=1,
            include_prompt_in_result=False, end_token=self.end_tokens,
        )
        return [self.tokenizer.decode(result.sequences_ids[0], skip_special_tokens=True).strip() for result in results]


def convert_to_ctranslate2(model_dir: str, ct2_dir: str):
    """int8 CTranslate2 copy of a transformers checkpoint, written under a temporary name then renamed."""
    from ctranslate2.converters import TransformersConverter

    partial = ct2_dir + ".partial"
    TransformersConverter(model_dir, load_as_float16=False).convert(partial, quantization="int8", force=True)
    os.replace(partial, ct2_dir)


def check(sources: list[str], outputs: list[str], back: list[str], target: str) -> list[Check]:
    import langid
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    langid.set_languages(["en", "de", "it", "zh", "fr", "es", "nl", "pt", "ja"])
    return [
        Check(langid.classify(out)[0] if out else "", len(out) / max(1, len(src)), chrf.sentence_score(b, [src]).score)
        for src, out, b in zip(sources, outputs, back)
    ]


def translate_and_check(translator: Translator, texts: list[str], target: str) -> tuple[list[str], list[Check]]:
    outputs = translator(texts, target)
    back = translator([out or "." for out in outputs], "en")
    return outputs, check(texts, outputs, back, target)


# ---------------------------------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------------------------------


def read_translations(path: str = TRANSLATIONS) -> dict[str, dict]:
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return {row["text"]: row for row in map(json.loads, filter(str.strip, handle))}


def append_rows(rows: list[dict], path: str):
    with open(path, "a") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def build(translator: Translator, texts: list[str], path: str = TRANSLATIONS, chunk: int = 16) -> dict:
    """Translate the texts not yet in the cache, in chunks, appending each chunk's rows (and, beside them in
    DROPPED, each dropped output with its reason); returns the drop counts of this run."""
    done = read_translations(path)
    todo = list(dict.fromkeys(text for text in texts if text not in done))
    print(f"{len(texts) - len(todo)} of {len(texts)} texts already translated, {len(todo)} to translate")
    dropped = {language: {} for language in LANGUAGES}
    for start in tqdm(range(0, len(todo), chunk), desc="translating", unit="chunk"):
        batch = todo[start : start + chunk]
        rows, drops = [{"text": text} for text in batch], []
        for language in LANGUAGES:
            outputs, checks = translate_and_check(translator, batch, language)
            for row, output, verdict in zip(rows, outputs, checks):
                problem = verdict.problem(language)
                if problem:
                    dropped[language][problem] = dropped[language].get(problem, 0) + 1
                    drops.append({"text": row["text"], "language": language, "reason": problem, "output": output})
                else:
                    row[language] = output
        append_rows(drops, dropped_path(path))  # first: a row in `path` means its drops are recorded too
        append_rows(rows, path)
    return dropped


def dropped_path(path: str) -> str:
    return os.path.splitext(path)[0] + ".dropped.jsonl"


# ---------------------------------------------------------------------------------------------------------------
# Side by side
# ---------------------------------------------------------------------------------------------------------------


def talk_texts() -> list[str]:
    """Every distinct talk chunk, the held-out talks' first, each group in hash order: whatever part of the cache
    exists at any time covers the test split first, then a uniform sample of the training texts."""
    from synthesis.build_dataset import DEFAULT_TALKS, chunk_talk, is_held_out, read_talks

    talks = read_talks(DEFAULT_TALKS)
    held_out = [chunk["text"] for talk in talks if is_held_out(talk["id"], HELD_OUT_FRACTION) for chunk in chunk_talk(talk)]
    training = [chunk["text"] for talk in talks if not is_held_out(talk["id"], HELD_OUT_FRACTION) for chunk in chunk_talk(talk)]
    by_hash = lambda texts: sorted(set(texts), key=lambda text: hashlib.sha1(text.encode()).hexdigest())  # noqa: E731
    first = by_hash(held_out)
    return first + [text for text in by_hash(training) if text not in set(first)]


def sample_sentences(count: int) -> list[str]:
    """`count` talk chunks chosen by hash over all talks: the fixed sample the candidate translators are compared on."""
    return sorted(set(talk_texts()), key=lambda text: hashlib.sha1(text.encode()).hexdigest())[:count]


def compare(names: list[str], count: int) -> dict:
    """Each candidate translates the same sentences into de/it/zh: target-language rate, back-translation chrF,
    share kept by the checks, and seconds per sentence."""
    sentences = sample_sentences(count)
    report = {}
    for name in names:
        translator = load_translator(name)
        scores = {}
        for language in LANGUAGES:
            started = time.perf_counter()
            outputs, checks = translate_and_check(translator, sentences, language)
            seconds = time.perf_counter() - started
            scores[language] = {
                "target_language_rate": sum(c.language == language for c in checks) / len(checks),
                "back_translation_chrf": sum(c.back_chrf for c in checks) / len(checks),
                "kept": sum(not c.problem(language) for c in checks) / len(checks),
                "seconds_per_sentence": seconds / len(sentences),
                "examples": outputs[:3],
            }
            print(name, language, {k: v for k, v in scores[language].items() if k != "examples"})
        report[name] = scores
    return report


# Candidate translators: name → the conversion.parts function that builds it.
TRANSLATORS = {"qwen2.5-coder-0.5b-instruct": "qwen25_coder_05b_instruct", "qwen2.5-coder-1.5b-instruct": "qwen25_coder_15b_instruct"}


def load_translator(name: str) -> Translator:
    from conversion import parts

    model_dir = getattr(parts, TRANSLATORS[name])()
    return Translator(model_dir, model_dir + "-ct2-int8")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    side = commands.add_parser("compare", help="candidate translators side by side")
    side.add_argument("--sentences", type=int, default=100)
    side.add_argument("--translators", nargs="+", default=list(TRANSLATORS))
    side.add_argument("--output", default="outputs/translation-comparison.json")
    fill = commands.add_parser("build", help="translate texts into synthesis/translations.jsonl")
    fill.add_argument("--translator", choices=list(TRANSLATORS), default="qwen2.5-coder-1.5b-instruct")
    fill.add_argument("--texts", help="a file with one text per line (default: every talk chunk)")
    args = parser.parse_args()
    if args.command == "compare":
        report = compare(args.translators, args.sentences)
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output, "w") as handle:
            json.dump(report, handle, indent=1, ensure_ascii=False)
        print(f"wrote {args.output}")
    else:
        texts = open(args.texts).read().splitlines() if args.texts else talk_texts()
        print(build(load_translator(args.translator), [t for t in texts if t.strip()]))


if __name__ == "__main__":
    main()
