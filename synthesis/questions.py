"""Questions an LLM writes about each text, with short answers (fakACL: two per chunk), kept only when the answer is
said in the text, so that the audio answers them.

    python -m synthesis.questions build [--writer NAME] [--texts FILE]   # fill synthesis/questions.jsonl (resumable)
    python -m synthesis.questions build --llm_endpoint URL --llm_model NAME   # ... through an OpenAI-compatible server
    python -m synthesis.questions build --source SOURCE --output FILE     # a corpus's transcripts (its SQA rows)

One row per text: {"text", "questions": [{"question", "answer"}, ...], "dropped": [{"question", "answer", "reason"}]},
appended as they come, so a killed run resumes where it stopped. The texts come in synthesis.genres.annotation_order:
held-out texts first.
"""

import argparse
import collections
import os
import re

from tqdm.auto import tqdm

from synthesis.endpoint import stops_with_one_line
from synthesis.genres import normalise
from synthesis.llm import add_writer_options, writer_from_args
from synthesis.jsonl import append_rows, read_rows
from synthesis.talks import STOPWORDS
from synthesis.text_sources import add_text_options, chosen_texts

QUESTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "questions.jsonl")
PER_TEXT = 2
MAX_ANSWER_WORDS = 6
FUNCTION_WORDS = STOPWORDS | set("i me he him she her we us they them my his one someone something".split())
PAIR = re.compile(r"Q\d?\s*[:.]\s*(?P<question>.+?)\s*\n+\s*A\d?\s*[:.]\s*(?P<answer>.+)", re.I)


EXAMPLE = (
    'Text: "My sister moved to Chicago last year, and she loves her new job at the hospital."\n'
    "Q1: Where did the sister move last year?\nA1: Chicago\nQ2: Where is her new job?\nA2: at the hospital"
)


def instruction(text: str) -> str:
    """A one-shot request: without the example, the LLM asks what a text means and answers in a sentence."""
    return (
        f"Write {PER_TEXT} questions about facts that a text states. Each answer is one to four words copied from the "
        f"text.\n\nExample:\n{EXAMPLE}\n\nNow the same for this text:\nText: \"{text}\""
    )


def parse(reply: str) -> list[dict]:
    """The question/answer pairs of a reply written in the requested format."""
    pairs = []
    for match in PAIR.finditer(reply):
        answer = match["answer"].strip().strip("\"'").rstrip(".").strip()
        pairs.append({"question": match["question"].strip(), "answer": answer})
    return pairs


def problem(pair: dict, text: str) -> str:
    """Why a pair is dropped ("" when kept): the answer must be short, said in the text (word for word, after
    normalisation) and not given away by the question."""
    question, answer = pair["question"], normalise(pair["answer"])
    if not question.endswith("?") or not 3 <= len(question.split()) <= 25:
        return "not a question"
    if not answer or len(answer.split()) > MAX_ANSWER_WORDS:
        return "answer too long" if answer else "no answer"
    if all(word in FUNCTION_WORDS for word in answer.split()):
        return "answer is a function word"
    if f" {answer} " not in f" {normalise(text)} ":
        return "answer not said"
    if f" {answer} " in f" {normalise(question)} ":
        return "question gives the answer"
    return ""


def ask(writer, texts: list[str]) -> list[dict]:
    """One row per text: its kept questions (at most PER_TEXT, distinct) and the dropped ones with their reasons."""
    replies = writer.reply([instruction(text) for text in texts], max_new_tokens=120, batch_size=len(texts))
    rows = []
    for text, reply in zip(texts, replies):
        kept, dropped, pairs = [], [], parse(reply)
        for pair in pairs:
            reason = problem(pair, text)
            if not reason and (len(kept) == PER_TEXT or pair["question"] in {q["question"] for q in kept}):
                reason = "more than asked"
            if reason:
                dropped.append(pair | {"reason": reason})
            else:
                kept.append(pair)
        if not pairs:
            dropped.append({"question": None, "answer": None, "reason": "not in the format", "reply": reply})
        rows.append({"text": text, "questions": kept, "dropped": dropped})
    return rows


def build(writer, texts: list[str], path: str = QUESTIONS, chunk: int = 16) -> collections.Counter:
    """Ask about the texts not yet in the cache, a chunk at a time, each chunk appended at once; returns the counts of
    kept and dropped questions (by reason) of this run."""
    done = {row["text"] for row in read_rows(path)}
    todo = list(dict.fromkeys(text for text in texts if text not in done))
    print(f"{len(texts) - len(todo)} of {len(texts)} texts already have questions, {len(todo)} to ask about")
    outcomes = collections.Counter()
    for start in tqdm(range(0, len(todo), chunk), desc="writing questions", unit="chunk"):
        rows = ask(writer, todo[start : start + chunk])
        for row in rows:
            outcomes["kept"] += len(row["questions"])
            outcomes.update(pair["reason"] for pair in row["dropped"])
        append_rows(rows, path)
    return outcomes


def read_questions(path: str = QUESTIONS) -> dict[str, list[dict]]:
    return {row["text"]: row["questions"] for row in read_rows(path)}


@stops_with_one_line
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fill = commands.add_parser("build", help="write questions into synthesis/questions.jsonl (or --output)")
    add_writer_options(fill)
    add_text_options(fill, QUESTIONS)
    args = parser.parse_args()
    texts = chosen_texts(args)
    print(dict(build(writer_from_args(args), texts, args.output)))


if __name__ == "__main__":
    main()
