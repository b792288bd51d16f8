"""The embedded default through vLLM: its transcript of a real recording equals the pipeline's. A module of its own,
so that the tiny checkpoint's server (test_serving.py) is down before the 0.5B engine starts: the two at once, beside
anything else, ran a 24 GiB machine out of memory."""

import os

import pytest

from processing_speechllm import TRANSCRIBE_INSTRUCTION
from serving.client import Server, audio_message
from serving.export import export_for_vllm
from serving.serve import SERVE_VENV

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(SERVE_VENV, "bin", "python")), reason=f"no serving venv at {SERVE_VENV}: `./run test` makes it"
)


def test_default_transcribes_a_real_clip_as_the_pipeline_does(default_dir, tmp_path_factory):
    from transformers import pipeline

    from evaluation.arctic import ARCTIC

    pipe = pipeline("speech-instruct", model=default_dir, trust_remote_code=True)
    pipe.model.merge_lora()
    # vLLM serves the LLM alone, greedily: compared with the pipeline decoding the same way (not joint CTC/LLM)
    expected = pipe(ARCTIC.audio, task="transcribe", max_new_tokens=32, ctc_weight=0, num_beams=1)
    del pipe
    exported = export_for_vllm(default_dir, str(tmp_path_factory.mktemp("default-vllm")))
    from openai import OpenAI

    with Server(exported) as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=600)
        response = client.chat.completions.create(
            model="speechllm", messages=[audio_message(ARCTIC.audio, TRANSCRIBE_INSTRUCTION)], max_tokens=32
        )
    assert response.choices[0].message.content.strip() == expected.strip()
    assert len(expected.split()) >= 5  # a real transcript, not an empty answer that would match trivially
