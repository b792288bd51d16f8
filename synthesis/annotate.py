"""The LLM's questions and translations of a v2 build's texts, a block at a time in annotation order (held-out texts
first, then every genre in turn), so that whatever part of the hours-long job is done has both for the same texts.

    python -m synthesis.annotate [--texts N] [--block 128] [--writer NAME]   # resumable: each cache skips what it has
    python -m synthesis.annotate --llm_endpoint URL --llm_model NAME        # ... written by a served LLM (synthesis/endpoint.py)

--texts N stops after the first N texts of that order (a v2 build's --limit takes the same prefix); --translate M
translates only the first M of them (translation costs ~4x the questions; ST training needs fewer texts than ASR).

Fills synthesis/questions.jsonl (synthesis.questions) and synthesis/translations.jsonl (synthesis.translation); both
are committed as they grow, so another machine continues where this one stopped.
"""

import argparse

from tqdm.auto import tqdm

from synthesis import questions, translation
from synthesis.genres import annotation_order, selection
from synthesis.endpoint import stops_with_one_line
from synthesis.llm import add_writer_options, writer_from_args


def pending(texts: list[str], to_translate: set[str], questions_path: str, translations_path: str) -> list[str]:
    """The texts that lack questions, or translations they are to have."""
    asked = set(questions.read_questions(questions_path))
    translated = set(translation.read_translations(translations_path))
    return [text for text in texts if text not in asked or (text in to_translate and text not in translated)]


def annotate(writer, texts: list[str], block: int, questions_path: str = questions.QUESTIONS,
             translations_path: str = translation.TRANSLATIONS, translate: int | None = None) -> None:
    """Questions for every text, translations for the first `translate` (default: all), block by block."""
    to_translate = set(texts[:translate])
    todo = pending(texts, to_translate, questions_path, translations_path)
    print(f"{len(texts) - len(todo)} of {len(texts)} texts annotated ({len(to_translate)} to be translated), {len(todo)} to do")
    translator = translation.Translator(writer)
    for start in tqdm(range(0, len(todo), block), desc="annotating", unit="block"):
        part = todo[start : start + block]
        questions.build(writer, part, questions_path)
        translation.build(translator, [text for text in part if text in to_translate], translations_path)


@stops_with_one_line
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", type=int, default=128)
    add_writer_options(parser)
    parser.add_argument("--texts", type=int, help="only the first N texts of the annotation order")
    parser.add_argument("--translate", type=int, help="translate only the first M of those texts")
    args = parser.parse_args()
    texts = annotation_order(selection())[: args.texts]
    annotate(writer_from_args(args), texts, args.block, translate=args.translate)


if __name__ == "__main__":
    main()
