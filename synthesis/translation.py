"""Synthetic translations into German, Italian and Chinese (the papers' "synthetic MT targets"), by an offline LLM.

    python -m synthesis.translation compare [--sentences 100]     # the candidate translators side by side
    python -m synthesis.translation build [--writer NAME] [--texts FILE]   # fill synthesis/translations.jsonl
    python -m synthesis.translation build --llm_endpoint URL --llm_model NAME   # ... through an OpenAI-compatible server
    python -m synthesis.translation build --source SOURCE --output FILE      # a corpus's transcripts (its ST rows)

A translator is an instruct LLM converted from its pip package (conversion/parts.py), run by CTranslate2 (int8,
batched greedy decoding: several times faster than transformers on CPU). Each output is checked as the 2026 system
filters with reference-free QE, here with what runs offline: its language (langid), its length against the source's,
and back-translation agreement (chrF of the English back-translation against the source). Kept translations go to
synthesis/translations.jsonl, one object per text {"text", "de", "it", "zh"} (a language whose translation failed
the checks is absent), appended as they come, so a killed run resumes where it stopped.
"""

import argparse
import json
import os
import time
from dataclasses import dataclass

from tqdm.auto import tqdm

from evaluation.language_id import LANGUAGE_NAMES, identify
from synthesis.genres import hash_rank, talk_rows
from synthesis.jsonl import append_rows, read_rows
from synthesis.endpoint import stops_with_one_line
from synthesis.llm import WRITERS, InstructLLM, add_writer_options, load_writer, writer_from_args
from synthesis.text_sources import add_text_options, chosen_texts

TRANSLATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "translations.jsonl")
LANGUAGES = ("de", "it", "zh")
# Characters of translation per character of English: measured ranges are ~1.0-1.4 for de/it and ~0.25-0.45 for zh;
# a translation outside [low, high] is cut short or runs on.
LENGTH_RATIO = {"de": (0.6, 2.0), "it": (0.6, 2.0), "zh": (0.12, 0.9)}
MIN_BACK_CHRF = 35.0


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
    """An instruct LLM translating with its own chat template, greedy, batched."""

    def __init__(self, llm: InstructLLM):
        self.llm = llm

    @staticmethod
    def instruction(text: str, target: str) -> str:
        return (
            f"Translate the following text from English into {LANGUAGE_NAMES[target]}. "
            f"Output only the {LANGUAGE_NAMES[target]} translation and nothing else.\n\n{text}"
        )

    def __call__(self, texts: list[str], target: str, batch_size: int = 16) -> list[str]:
        budget = max(int(self.llm.count_tokens(text) * (2.5 if target != "en" else 1.8)) + 16 for text in texts)
        return self.llm.reply([self.instruction(text, target) for text in texts], budget, batch_size)


def check(sources: list[str], outputs: list[str], back: list[str], target: str) -> list[Check]:
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    return [
        Check(language, len(out) / max(1, len(src)), chrf.sentence_score(b, [src]).score)
        for src, out, b, language in zip(sources, outputs, back, identify(outputs))
    ]


def translate_and_check(translator: Translator, texts: list[str], target: str) -> tuple[list[str], list[Check]]:
    outputs = translator(texts, target)
    back = translator([out or "." for out in outputs], "en")
    return outputs, check(texts, outputs, back, target)


# ---------------------------------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------------------------------


def read_translations(path: str = TRANSLATIONS) -> dict[str, dict]:
    return {row["text"]: row for row in read_rows(path)}


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


def sample_sentences(count: int) -> list[str]:
    """`count` talk chunks chosen by hash over all talks: the fixed sample the candidate translators are compared on."""

    return sorted({row["text"] for row in talk_rows()}, key=hash_rank)[:count]


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


def load_translator(name: str) -> Translator:
    return Translator(load_writer(name))


@stops_with_one_line
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    side = commands.add_parser("compare", help="candidate translators side by side")
    side.add_argument("--sentences", type=int, default=100)
    side.add_argument("--translators", nargs="+", default=list(WRITERS))
    side.add_argument("--output", default="outputs/translation-comparison.json")
    fill = commands.add_parser("build", help="translate texts into synthesis/translations.jsonl (or --output)")
    add_writer_options(fill, "the local LLM that translates (synthesis.llm.WRITERS)")
    add_text_options(fill, TRANSLATIONS)
    args = parser.parse_args()
    if args.command == "compare":
        report = compare(args.translators, args.sentences)
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output, "w") as handle:
            json.dump(report, handle, indent=1, ensure_ascii=False)
        print(f"wrote {args.output}")
    else:
        texts = chosen_texts(args)
        print(build(Translator(writer_from_args(args)), texts, args.output))


if __name__ == "__main__":
    main()
