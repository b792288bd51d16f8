"""Audio longer than the encoder's window: where to cut it into segments (issue 18's segment-by-segment mode).

A cut goes at the quietest point near the target length — in a pause between words when there is one — judged on
the energy smoothed over `pause_seconds`, with a small pull towards the target so that segments stay near it.
Segments cover the recording without gaps or overlaps, and none is longer than `longest_seconds`.
"""

import numpy as np


def smoothed_energy_db(samples: np.ndarray, rate: int, hop_seconds: float, pause_seconds: float) -> np.ndarray:
    """Energy in dB per hop, averaged over a window of `pause_seconds` centred on it."""
    hop = max(1, int(hop_seconds * rate))
    frames = len(samples) // hop
    power = np.square(samples[: frames * hop].astype(np.float64)).reshape(frames, hop).mean(axis=1)
    width = max(1, int(round(pause_seconds / hop_seconds)))
    smoothed = np.convolve(power, np.ones(width) / width, mode="same")
    return 10 * np.log10(smoothed + 1e-10)


def segment_bounds(
    samples: np.ndarray,
    rate: int,
    target_seconds: float = 20.0,
    longest_seconds: float = 30.0,
    shortest_seconds: float = 5.0,
    hop_seconds: float = 0.01,
    pause_seconds: float = 0.2,
    pull_db_per_second: float = 0.5,
) -> list[tuple[int, int]]:
    """[(start, end)] sample ranges that cover `samples` in order, each at most `longest_seconds` long."""
    if not 0 < shortest_seconds <= target_seconds <= longest_seconds:
        raise ValueError("need 0 < shortest_seconds <= target_seconds <= longest_seconds")
    energy = smoothed_energy_db(samples, rate, hop_seconds, pause_seconds)
    hop = max(1, int(hop_seconds * rate))
    bounds, start = [], 0
    while len(samples) - start > longest_seconds * rate:
        first = (start + int(shortest_seconds * rate)) // hop
        last = (start + int(longest_seconds * rate)) // hop  # a cut at hop `last` keeps the segment within the limit
        candidates = np.arange(first, last)
        distance = np.abs(candidates * hop - (start + target_seconds * rate)) / rate
        cut = int(candidates[np.argmin(energy[candidates] + pull_db_per_second * distance)]) * hop
        bounds.append((start, cut))
        start = cut
    bounds.append((start, len(samples)))
    return bounds
