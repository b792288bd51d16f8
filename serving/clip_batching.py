"""Per-clip features, as vLLM hands them to the model, padded into one encoder batch (torch only: no vLLM import)."""

import torch
from torch import nn


def as_clip_list(value) -> list[torch.Tensor]:
    """vLLM hands a field over as one stacked tensor when its items share a shape, else as a list."""
    return list(value) if isinstance(value, torch.Tensor) else [item for item in value]


def pad_clips(features: list[torch.Tensor], masks: list[torch.Tensor], channels_first: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad per-clip features and their frame masks (T,) to one batch. `channels_first`: (channels, T), as
    Whisper's extractor gives them; else (T, channels), as Seamless's and W2V-BERT's do. The layout is the encoder's,
    not guessed from shapes: a clip of as many frames as channels is square."""
    longest = max(mask.shape[-1] for mask in masks)
    padded = []
    for feature in features:
        missing = longest - feature.shape[-1 if channels_first else 0]
        padded.append(nn.functional.pad(feature, (0, missing) if channels_first else (0, 0, 0, missing)))
    mask = torch.stack([nn.functional.pad(m, (0, longest - m.shape[-1])) for m in masks])
    return torch.stack(padded), mask
