"""Shared fixtures: tiny random checkpoints built offline, and audio made here."""

import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from make_tiny_checkpoint import build_tiny  # noqa: E402

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
def seamless_checkpoint(tmp_path_factory):
    from make_tiny_checkpoint import build_tiny

    model, processor = build_tiny("seamless", seed=0)
    path = tmp_path_factory.mktemp("tiny-train")
    model.save_pretrained(path)
    processor.save_pretrained(path)
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
