"""serving/clip_batching.py: clips extracted one by one (as vLLM hands them over) padded into the batch the processor
would have made, along the time axis of the encoder's layout (torch only: runs without vLLM)."""

import numpy as np
import pytest
import torch

from modeling_speechllm import SpeechEncoder
from serving.clip_batching import pad_clips


@pytest.mark.parametrize("fixture", ["tiny", "tiny_whisper"])
def test_the_encoder_names_the_layout_its_extractor_gives(fixture, request):
    model, processor = request.getfixturevalue(fixture)
    data = processor.extract_features([np.zeros(12_000, np.float32)])
    time_axis = -1 if SpeechEncoder(model.config).features_are_channels_first else 1
    assert data["input_features"].shape[time_axis] == data["input_features_mask"].shape[-1]
    assert data["input_features"].shape[1] != data["input_features"].shape[2]  # not square: the check means something


def test_per_clip_seamless_features_padded_equal_the_processors_batch(tiny):
    """Seamless normalises each clip alone, so padding clips extracted one by one gives the batch exactly. (Whisper's STFT
    is centred, so a clip's last valid frame sees what follows it, and its padding is not zeros: there only the layout
    is checked.)"""
    model, processor = tiny
    clips = [np.random.default_rng(seed).standard_normal(samples).astype(np.float32) * 0.1 for seed, samples in enumerate([12_000, 4_800])]
    alone = [processor.extract_features([clip]) for clip in clips]
    channels_first = SpeechEncoder(model.config).features_are_channels_first
    features, mask = pad_clips([a["input_features"][0] for a in alone], [a["input_features_mask"][0] for a in alone], channels_first)
    batch = processor.extract_features(clips)
    assert mask.tolist() == batch["input_features_mask"].tolist()
    assert torch.allclose(features, batch["input_features"], atol=1e-5)


def test_a_square_clip_is_padded_along_time_not_channels():
    """160 frames of 160 channels (Seamless's stacked features): the old shape-guessing rule padded its channels."""
    square, short = torch.randn(160, 160), torch.randn(100, 160)
    features, mask = pad_clips([square, short], [torch.ones(160), torch.ones(100)], channels_first=False)
    assert features.shape == (2, 160, 160)
    assert torch.equal(features[1, :100], short) and not features[1, 100:].any()
    assert mask.sum(-1).tolist() == [160, 100]
    whisper_square, whisper_short = torch.randn(80, 80), torch.randn(80, 50)
    features, mask = pad_clips([whisper_square, whisper_short], [torch.ones(80), torch.ones(50)], channels_first=True)
    assert features.shape == (2, 80, 80)
    assert torch.equal(features[1, :, :50], whisper_short) and not features[1, :, 50:].any()
