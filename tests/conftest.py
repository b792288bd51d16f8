"""Shared fixtures: tiny random checkpoints built offline, and audio made here."""

import json
import os

import numpy as np
import pytest
import soundfile
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from scripts.make_tiny_checkpoint import build_tiny  # noqa: E402  (after HF_HUB_OFFLINE: huggingface_hub reads it on import)

SAMPLING_RATE = 16000


@pytest.fixture(scope="session")
def tiny(request):
    """(model, processor) of the tiny random Seamless checkpoint."""
    return build_tiny("seamless", seed=0)


@pytest.fixture(scope="session")
def tiny_whisper():
    return build_tiny("whisper", seed=0)


@pytest.fixture(scope="session")
def tiny_w2v_bert():
    return build_tiny("w2v-bert", seed=0)


@pytest.fixture(scope="session", params=["seamless", "whisper"])
def tiny_checkpoint(request, tmp_path_factory):
    """A saved tiny checkpoint directory of each encoder kind."""
    model, processor = build_tiny(request.param, seed=0)
    path = tmp_path_factory.mktemp(f"tiny-{request.param}")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def part_cache(tmp_path_factory):
    """The real parts (Whisper tiny.en, SmolLM2) converted from their pip packages once per run, as on a new machine."""
    os.environ["SPEECHLLM_CACHE"] = str(tmp_path_factory.mktemp("parts-cache"))
    yield os.environ["SPEECHLLM_CACHE"]
    del os.environ["SPEECHLLM_CACHE"]


@pytest.fixture(scope="session")
def default_dir(part_cache, tmp_path_factory):
    """The embedded default built from the real parts and the shipped weights, as the main job builds it."""
    from scripts.build_default_model import build_default

    path = str(tmp_path_factory.mktemp("default"))
    torch.manual_seed(0)
    build_default(path)
    return path


@pytest.fixture(scope="session")
def seamless_checkpoint(tmp_path_factory):
    from scripts.make_tiny_checkpoint import build_tiny

    model, processor = build_tiny("seamless", seed=0)
    path = tmp_path_factory.mktemp("tiny-train")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


TRANSCRIPTS = ["the fox", "speech", "the model", "we present", "language", "the mapper", "test", "the dog"]


@pytest.fixture(scope="session")
def manifest(tmp_path_factory):
    """8 good clips as ASR/ST/SQA rows, one MT row, and three bad rows (missing, empty, not audio)."""
    directory = tmp_path_factory.mktemp("data")
    rows = []
    for i, text in enumerate(TRANSCRIPTS):
        soundfile.write(directory / f"clip{i}.wav", make_audio(2.5 + 0.25 * (i % 3), seed=i, frequency=140 + 35 * i), 16000)
        task = ["asr", "st", "sqa"][i % 3]
        row = {"id": f"good{i}", "audio": f"clip{i}.wav", "transcript": text, "task": task}
        if task == "st":
            row.update(tgt_lang=["de", "it"][i % 2], translation=["das ist gut", "va bene"][i % 2])
        if task == "sqa":
            row.update(question="what is said?", answer=text)
        rows.append(row)
    rows.append({"id": "text0", "transcript": "the fox", "task": "mt", "tgt_lang": "de", "translation": "der fuchs"})
    soundfile.write(directory / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (directory / "notes.wav").write_text("not audio")
    rows += [
        {"id": "bad-missing", "audio": "missing.wav", "transcript": "x", "task": "asr"},
        {"id": "bad-empty", "audio": "empty.wav", "transcript": "x", "task": "asr"},
        {"id": "bad-text", "audio": "notes.wav", "transcript": "x", "task": "asr"},
    ]
    path = directory / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return str(path)


def make_audio(seconds: float, seed: int = 0, frequency: float = 220.0) -> np.ndarray:
    """A tone with noise: deterministic speech-like energy, without any file."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    return (0.3 * np.sin(2 * np.pi * frequency * t) + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


@pytest.fixture
def audio():
    return make_audio


def greedy(model, inputs, max_new_tokens=8):
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)
    return out[:, inputs["input_ids"].shape[1] :]
