"""The LLM-written talks (synthesis/talks.jsonl) as the data builds and the genres read them: talks, their chunks,
and which talks are held out. Both synthesis.build_dataset and synthesis.genres build on it."""

import hashlib
import json
import os

from synthesis.write_talks import clean_sentences

DEFAULT_TALKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "talks.jsonl")
MAX_CHUNK_WORDS = 30
STOPWORDS = set(
    "the a an and or but of to in on for with by from as at is are was were be been being this that these those it its "
    "we our you your they their there which what who how can will would could should may might more most such also "
    "into than then them not only very have has had".split()
)


def read_talks(path: str) -> list[dict]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def chunk_talk(talk: dict) -> list[dict]:
    """Consecutive sentences grouped into chunks of at most MAX_CHUNK_WORDS words (one sentence at least)."""
    chunks, current = [], []
    for sentence in clean_sentences(talk["raw"]):
        if current and len(" ".join(current + [sentence]).split()) > MAX_CHUNK_WORDS:
            chunks.append(current)
            current = []
        current.append(sentence)
    if current:
        chunks.append(current)
    return [{"id": f"{talk['id']}-{i}", "talk": talk["id"], "topic": talk["topic"], "text": " ".join(c)} for i, c in enumerate(chunks)]


def is_held_out(talk_id: str, fraction: float) -> bool:
    digest = int(hashlib.sha1(talk_id.encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < fraction
