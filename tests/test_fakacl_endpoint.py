"""fakACL's writing through an OpenAI-compatible server: vLLM (the serving venv) serving a real small text LLM on
loopback (Qwen2.5-Coder-0.5B-Instruct, one of synthesis.llm.WRITERS, converted from its pip package) writes talks,
questions and translations that the build's own filters check and its caches keep; a server that goes away mid-build
stops it with one line, and a rerun resumes after what was kept. A module of its own: its server runs alone."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from serving.client import Server, free_port
from serving.serve import SERVE_VENV
from synthesis import questions, translation
from synthesis.endpoint import EndpointError, EndpointLLM
from synthesis.jsonl import read_rows
from synthesis.talks import chunk_talk
from synthesis.write_talks import clean_sentences, talk_requests

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(SERVE_VENV, "bin", "python")), reason=f"no serving venv at {SERVE_VENV}: `./run test` makes it"
)
WRITER = "qwen2.5-coder-0.5b-instruct"
TEXTS = [
    "Our parser was trained on twelve thousand sentences from news articles.",
    "The new model translates lectures from English into German in real time.",
    "We recorded forty speakers reading short stories in a quiet room.",
    "The system answers questions about the talk after listening to it once.",
]


@pytest.fixture(scope="module")
def endpoint(part_cache, tmp_path_factory):
    """The URL of a vLLM server of the writer LLM, as a cluster would serve Llama-3.1-70B for the paper's build."""
    from conversion import parts

    log = str(tmp_path_factory.mktemp("writer-server") / "server.log")
    with Server(parts.part(WRITER), log_path=log, served_name=WRITER, speech=False) as server:
        yield f"{server.url}/v1"


def test_talks_questions_and_translations_come_through_the_endpoint_checked_by_the_builds_filters(endpoint, tmp_path):
    from synthesis.write_talks import main as write_talks

    talks_path = tmp_path / "talks.jsonl"
    write_talks(["--output", str(talks_path), "--per_topic", "1", "--limit", "2", "--llm_endpoint", endpoint,
                 "--llm_model", WRITER])
    talks = read_rows(str(talks_path))
    assert [talk["id"] for talk in talks] == [request["id"] for request in talk_requests(1)[:2]]
    assert all(talk["raw"].strip() for talk in talks)
    assert max(len(clean_sentences(talk["raw"])) for talk in talks) >= 2  # a talk the filters keep sentences of
    chunks = [chunk["text"] for talk in talks for chunk in chunk_talk(talk)]

    llm = EndpointLLM(endpoint, WRITER, concurrency=4)
    asked = tmp_path / "questions.jsonl"
    questions.build(llm, TEXTS[:3] + chunks[:1], str(asked))
    rows = read_rows(str(asked))
    committed = read_rows(questions.QUESTIONS)[0]
    assert len(rows) == 4 and all(set(row) == set(committed) for row in rows)
    kept = [(row["text"], pair) for row in rows for pair in row["questions"]]
    assert len(kept) >= 2, rows  # the one-shot format is followed, and answers are said in the text
    assert all(questions.problem(pair, text) == "" for text, pair in kept)

    translated = tmp_path / "translations.jsonl"
    translation.build(translation.Translator(llm), TEXTS[1:2], str(translated))
    rows = read_rows(str(translated))
    assert [row["text"] for row in rows] == TEXTS[1:2]
    assert sum(language in row for row in rows for language in translation.LANGUAGES) >= 1  # kept by the checks
    dropped = read_rows(translation.dropped_path(str(translated))) if os.path.exists(translation.dropped_path(str(translated))) else []
    assert all(row["reason"] for row in dropped)


class DyingEndpoint(EndpointLLM):
    """The served LLM, until its first chunk is answered; then its server is gone (nothing listens on the port)."""

    def reply(self, *args, **kwargs):
        replies = super().reply(*args, **kwargs)
        from openai import OpenAI

        self.client = OpenAI(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="unused", max_retries=1, timeout=10)
        return replies


def test_a_server_that_dies_mid_build_loses_nothing_and_the_rerun_resumes(endpoint, tmp_path, capsys):
    asked = tmp_path / "questions.jsonl"
    with pytest.raises(EndpointError, match="did not answer.*run the same command again"):
        questions.build(DyingEndpoint(endpoint, WRITER), TEXTS, str(asked), chunk=2)
    assert [row["text"] for row in read_rows(str(asked))] == TEXTS[:2]  # the answered chunk is in the cache
    capsys.readouterr()
    questions.build(EndpointLLM(endpoint, WRITER), TEXTS, str(asked), chunk=2)
    assert "2 of 4 texts already have questions, 2 to ask about" in capsys.readouterr().out
    assert [row["text"] for row in read_rows(str(asked))] == TEXTS

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS))
    command = [sys.executable, "-m", "synthesis.questions", "build", "--texts", str(texts), "--output", str(tmp_path / "q.jsonl"),
               "--llm_endpoint", f"http://127.0.0.1:{free_port()}/v1", "--llm_model", WRITER, "--llm_retries", "0"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("synthesis.questions: the LLM endpoint http://127.0.0.1:")
