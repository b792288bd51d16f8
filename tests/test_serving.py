"""Serving through vLLM (serving/): the export's chat template and the OpenAI server, held to HF `generate` token for
token (prompt and answer); bad requests; concurrency and a bounded load test. (The default on a real clip:
test_serving_default.py.)

vLLM runs from the serving venv (.venv-serve, made by `./run test`); these tests drive its server in a subprocess. A tiny
checkpoint with head size 32 stands in for the real one (vLLM's CPU attention takes no smaller head)."""

import base64
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_speechllm import SpeechLLMForConditionalGeneration
from processing_speechllm import TRANSCRIBE_INSTRUCTION, SpeechLLMProcessor
from scripts.make_tiny_checkpoint import build_tiny
from serving.client import Server, audio_message, encode_audio
from serving.export import export_for_vllm
from serving.serve import SERVE_VENV

SERVE_PYTHON = os.path.join(SERVE_VENV, "bin", "python")
MAX_TOKENS = 12

pytestmark = pytest.mark.skipif(
    not os.path.exists(SERVE_PYTHON), reason=f"no serving venv at {SERVE_VENV}: `./run test` makes it"
)


def noise_clip(seconds: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_vllm(tmp_path_factory):
    """(checkpoint dir, its vLLM export) of a tiny random Whisper checkpoint with LoRA attached (the export merges it)."""
    model, processor = build_tiny("whisper", seed=1, head_dim=32)
    model.enable_lora(r=4, lora_alpha=8)
    torch.manual_seed(1)
    with torch.no_grad():  # LoRA B starts at zero: give it weights, so that merging it changes the outputs
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    path = str(tmp_path_factory.mktemp("tiny-vllm"))
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path, export_for_vllm(path, os.path.join(path, "vllm"))


class Reference:
    """HF generate on a checkpoint, greedy, as the pipeline runs it."""

    def __init__(self, checkpoint: str):
        self.model = SpeechLLMForConditionalGeneration.from_pretrained(checkpoint).eval()
        self.processor = SpeechLLMProcessor.from_pretrained(checkpoint)

    def inputs(self, audio, instruction: str = TRANSCRIBE_INSTRUCTION):
        conversation = [{"role": "user", "content": [{"type": "audio", "audio": audio}, {"type": "text", "text": instruction}]}]
        return self.processor.apply_chat_template(conversation, sampling_rate=16000)

    def generate(self, audio, instruction: str = TRANSCRIBE_INSTRUCTION, max_new_tokens: int = MAX_TOKENS) -> list[int]:
        inputs = self.inputs(audio, instruction)
        with torch.no_grad():
            sequences = self.model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
        return sequences[0, inputs["input_ids"].shape[1] :].tolist()


@pytest.fixture(scope="module")
def reference(tiny_vllm):
    return Reference(tiny_vllm[0])


# ---------------------------------------------------------------------------------------------------------------
# The export (project venv only)
# ---------------------------------------------------------------------------------------------------------------


def test_export_merges_lora_and_keeps_the_outputs(tiny_vllm, reference):
    exported = SpeechLLMForConditionalGeneration.from_pretrained(tiny_vllm[1]).eval()
    assert exported.config.lora is None
    assert not any("lora_" in name for name, _ in exported.named_parameters())
    clip = noise_clip(2.0, seed=5)
    inputs = reference.inputs(clip)
    with torch.no_grad():
        merged = exported.generate(**inputs, do_sample=False, max_new_tokens=MAX_TOKENS)[0, inputs["input_ids"].shape[1] :]
    assert merged.tolist() == reference.generate(clip)
    with open(os.path.join(tiny_vllm[1], "generation_config.json")) as handle:
        assert json.load(handle)["temperature"] == 0.0  # vLLM's default for requests that name none: greedy


def test_an_export_is_keyed_by_the_weights_and_by_the_exporting_code(tiny_vllm, tmp_path, monkeypatch):
    """./run serve reuses an export only for the same weights and the same code: an upgraded project never serves an
    export made by older code, nor a retrained checkpoint an old export."""
    import shutil

    from serving import export
    from serving.serve import export_digest

    checkpoint = shutil.copytree(tiny_vllm[0], tmp_path / "checkpoint", ignore=shutil.ignore_patterns("vllm"))
    before = export_digest(str(checkpoint))
    assert export_digest(str(checkpoint)) == before
    newer_exporter = tmp_path / "export.py"
    newer_exporter.write_text(Path(export.__file__).read_text() + "\n# a newer exporter\n")
    monkeypatch.setattr(export, "__file__", str(newer_exporter))
    assert export_digest(str(checkpoint)) != before
    monkeypatch.undo()
    weights = checkpoint / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert export_digest(str(checkpoint)) != before


@pytest.mark.parametrize(
    "parts",
    [
        [{"type": "audio"}, {"type": "text", "text": "Transcribe the audio."}],
        [{"type": "text", "text": "What is said?"}, {"type": "audio"}],
        [{"type": "audio"}],
        [{"type": "audio"}, {"type": "audio"}, {"type": "text", "text": "Compare them."}],
        [{"type": "text", "text": "Translate: guten Tag"}],
    ],
)
def test_chat_template_renders_the_processor_prompt(tiny_vllm, parts):
    """vLLM renders chat requests with the exported template; the text must be the processor's prompt exactly."""
    original = SpeechLLMProcessor.from_pretrained(tiny_vllm[0])
    exported = SpeechLLMProcessor.from_pretrained(tiny_vllm[1])
    clip = noise_clip(1.0, seed=0)
    hf_parts = [{"type": "audio", "audio": clip} if p["type"] == "audio" else p for p in parts]
    expected = original.apply_chat_template([{"role": "user", "content": hf_parts}], tokenize=False)
    rendered = exported.tokenizer.apply_chat_template(
        [{"role": "user", "content": parts}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == expected


def test_chat_template_refuses_a_typed_placeholder(tiny_vllm):
    exported = SpeechLLMProcessor.from_pretrained(tiny_vllm[1])
    with pytest.raises(Exception, match="input_audio part"):
        exported.tokenizer.apply_chat_template(
            [{"role": "user", "content": [{"type": "text", "text": "<|audio|> Transcribe the audio."}]}], tokenize=False
        )


# ---------------------------------------------------------------------------------------------------------------
# The OpenAI-compatible server
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_server(tiny_vllm):
    with Server(tiny_vllm[1]) as server:
        yield server


@pytest.fixture(scope="module")
def client(tiny_server):
    from openai import OpenAI

    return OpenAI(base_url=f"{tiny_server.url}/v1", api_key="unused", max_retries=0, timeout=300)


def served_tokens(client, message: dict, max_tokens: int = MAX_TOKENS) -> list[int]:
    response = client.chat.completions.create(
        model="speechllm", messages=[message], max_tokens=max_tokens, extra_body={"return_token_ids": True}
    )  # no temperature: the export's generation defaults make it greedy
    return response.choices[0].token_ids


def test_clips_of_different_lengths_batched_equal_hf_generate_prompt_and_answer(client, reference):
    """Four clips (0.6-12 s) at once, so the engine batches them: each prompt is the processor's, its placeholder
    expanded to the clip's own number of speech tokens, and each answer HF's greedy tokens."""
    clips = [noise_clip(seconds, seed) for seed, seconds in enumerate([0.6, 2.5, 7.3, 12.0])]

    def ask(clip):
        return client.chat.completions.create(
            model="speechllm", messages=[audio_message(clip, TRANSCRIBE_INSTRUCTION, "flac")], max_tokens=MAX_TOKENS,
            extra_body={"return_token_ids": True},
        )

    with ThreadPoolExecutor(len(clips)) as pool:
        responses = list(pool.map(ask, clips))
    audio_token_id = reference.processor.audio_token_id
    for clip, response in zip(clips, responses):
        heard = base64.b64decode(encode_audio(clip, 16000, "flac"))  # what the server hears: 16-bit FLAC
        assert response.prompt_token_ids == reference.inputs(heard)["input_ids"][0].tolist()
        speech_tokens = int(reference.processor(text=reference.processor.audio_token, audio=heard, sampling_rate=16000)["input_ids"].numel())
        assert response.prompt_token_ids.count(audio_token_id) == speech_tokens
        assert response.choices[0].token_ids == reference.generate(heard)


@pytest.mark.parametrize("audio_format", ["wav", "flac", "ogg"])
def test_server_equals_hf_generate(client, reference, audio_format):
    clip = noise_clip(3.0, seed=11)
    data = encode_audio(clip, 16000, audio_format)
    decoded = base64.b64decode(data)  # what the server hears: Opus is lossy, FLAC is 16-bit
    assert served_tokens(client, audio_message(clip, TRANSCRIBE_INSTRUCTION, audio_format)) == reference.generate(decoded)


def test_streaming_gives_the_same_text(client, reference):
    clip = noise_clip(2.0, seed=12)
    message = audio_message(clip, TRANSCRIBE_INSTRUCTION)
    stream = client.chat.completions.create(model="speechllm", messages=[message], max_tokens=MAX_TOKENS, stream=True)
    chunks = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len(chunks) > 2  # it arrived in pieces
    expected = reference.processor.decode(reference.generate(clip), skip_special_tokens=True)
    assert "".join(chunks) == expected


def test_audio_endpoints_answer_as_chat_does(client):
    """/v1/audio/transcriptions and /v1/audio/translations (to_language de) give the chat request's answer; a
    translation that names no target language is a 400; audio over 30 s is cut by vLLM at quiet points, not refused."""
    from openai import BadRequestError

    from processing_speechllm import translation_instruction

    clip = noise_clip(2.5, seed=14)
    wav = base64.b64decode(encode_audio(clip, 16000, "wav"))

    def chat(instruction: str) -> str:
        response = client.chat.completions.create(model="speechllm", messages=[audio_message(clip, instruction)], max_tokens=MAX_TOKENS)
        return response.choices[0].message.content

    transcript = client.audio.transcriptions.create(model="speechllm", file=("clip.wav", wav), extra_body={"max_completion_tokens": MAX_TOKENS})
    assert transcript.text == chat(TRANSCRIBE_INSTRUCTION)
    german = client.audio.translations.create(
        model="speechllm", file=("clip.wav", wav), extra_body={"to_language": "de", "max_completion_tokens": MAX_TOKENS}
    )
    assert german.text == chat(translation_instruction("de"))
    with pytest.raises(BadRequestError, match="to_language"):
        client.audio.translations.create(model="speechllm", file=("clip.wav", wav))
    long_wav = base64.b64decode(encode_audio(noise_clip(65.0, seed=15), 16000, "wav"))
    assert client.audio.transcriptions.create(model="speechllm", file=("long.wav", long_wav)).text


def bad_request(client, message: dict):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as error:
        client.chat.completions.create(model="speechllm", messages=[message], max_tokens=4)
    return str(error.value)


def test_bad_requests_are_400_with_a_message_and_the_server_keeps_serving(client, reference):
    not_audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"not a sound " * 200).decode(), "format": "wav"}}
    assert "audio" in bad_request(client, {"role": "user", "content": [not_audio, {"type": "text", "text": "Transcribe."}]}).lower()
    too_long = bad_request(client, audio_message(noise_clip(31.0, seed=1), TRANSCRIBE_INSTRUCTION))
    assert "31.0 s" in too_long and "at most 30 s" in too_long
    typed = bad_request(client, {"role": "user", "content": "<|audio|> Transcribe the audio."})
    assert "input_audio part" in typed
    clip = noise_clip(1.5, seed=13)
    assert served_tokens(client, audio_message(clip, TRANSCRIBE_INSTRUCTION)) == reference.generate(clip)


def test_concurrent_requests_all_come_back_right(client, reference):
    clips = [noise_clip(1.0 + index, seed=20 + index) for index in range(4)]
    expected = [reference.generate(clip) for clip in clips]
    jobs = [index % len(clips) for index in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: served_tokens(client, audio_message(clips[i], TRANSCRIBE_INSTRUCTION)), jobs))
    assert answers == [expected[i] for i in jobs]


def test_load_64_requests_nothing_dropped_memory_flat(client, tiny_server, reference):
    """64 requests in under a minute on loopback, 8 in flight: every answer right, the server's memory flat."""
    clips = [noise_clip(2.0, seed=40 + index) for index in range(4)]
    expected = [reference.generate(clip, max_new_tokens=6) for clip in clips]
    messages = [audio_message(clip, TRANSCRIBE_INSTRUCTION) for clip in clips]

    def ask(index: int) -> list[int]:
        return served_tokens(client, messages[index % 4], max_tokens=6)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ask, range(8)))  # warm-up: allocations that stay
        before = tiny_server.process_tree_rss()
        start = time.monotonic()
        answers = list(pool.map(ask, range(64)))
        elapsed = time.monotonic() - start
    after = tiny_server.process_tree_rss()
    assert answers == [expected[i % 4] for i in range(64)]
    assert elapsed < 60, f"64 requests took {elapsed:.0f} s"
    assert after < before * 1.10 + 64 * 2**20, f"server memory grew from {before / 2**20:.0f} to {after / 2**20:.0f} MiB"
