"""The LLM's questions and translations of a v2 build's texts, a block at a time in annotation order (held-out texts
first, then every genre in turn), so that whatever part of the hours-long job is done has both for the same texts.

    python -m synthesis.annotate [--block 128] [--writer NAME]      # resumable: each cache skips what it has

Fills synthesis/questions.jsonl (synthesis.questions) and synthesis/translations.jsonl (synthesis.translation); both
are committed as they grow, so another machine continues where this one stopped.
"""

import argparse
import os
import sys

from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from synthesis import questions, translation  # noqa: E402
from synthesis.genres import annotation_order, selection  # noqa: E402
from synthesis.llm import DEFAULT_WRITER, WRITERS, load_writer  # noqa: E402


def pending(texts: list[str], questions_path: str, translations_path: str) -> list[str]:
    """The texts that lack questions or translations."""
    asked = set(questions.read_questions(questions_path))
    translated = set(translation.read_translations(translations_path))
    return [text for text in texts if text not in asked or text not in translated]


def annotate(writer, texts: list[str], block: int, questions_path: str = questions.QUESTIONS,
             translations_path: str = translation.TRANSLATIONS) -> None:
    todo = pending(texts, questions_path, translations_path)
    print(f"{len(texts) - len(todo)} of {len(texts)} texts have questions and translations, {len(todo)} to do")
    translator = translation.Translator(writer)
    for start in tqdm(range(0, len(todo), block), desc="annotating", unit="block"):
        part = todo[start : start + block]
        questions.build(writer, part, questions_path)
        translation.build(translator, part, translations_path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--writer", choices=list(WRITERS), default=DEFAULT_WRITER)
    args = parser.parse_args()
    annotate(load_writer(args.writer), annotation_order(selection()), args.block)


if __name__ == "__main__":
    main()
