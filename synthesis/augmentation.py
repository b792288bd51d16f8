"""Audio augmentation for synthetic speech, so that a model trained on clean TTS meets rooms, noise and channels.

Built on audiomentations (and pyroomacoustics for simulated rooms): speed perturbation (resampling, as Kaldi's 0.9/1.1
recipe), room reverberation from simulated impulse responses, coloured noise or babble (other synthetic speakers'
clips) at 5-30 dB SNR, a telephone band, and gain. Deterministic for a seed: the same clip and seed always give the
same samples, whatever ran before (the global RNGs that audiomentations draws from are seeded per call and restored).

    augment = Augmenter(babble=list_of_wav_paths)
    samples, applied = augment(samples, seed=1234)      # applied: ["speed 1.07", "RoomSimulator", ...]
"""

import contextlib
import random

import numpy as np

SAMPLING_RATE = 16000
MAX_PEAK = 0.99  # louder clips are scaled down, never clipped


@contextlib.contextmanager
def seeded(seed: int):
    """Seed Python's and numpy's global RNGs for the block, then put their previous states back."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def speed_perturb(samples: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (tempo and pitch together), by resampling."""
    from scipy.signal import resample_poly

    up, down = 100, int(round(100 * factor))
    return resample_poly(samples, up, down).astype(np.float32)


class Augmenter:
    """The augmentation chain. Each stage fires with its own probability, drawn here (every audiomentations
    transform runs with p=1), so the list of what was applied is exact."""

    def __init__(self, babble: list[str] | None = None, p_speed=0.3, p_room=0.3, p_noise=0.4, p_telephone=0.1, p_gain=0.5):
        from audiomentations import (
            AddBackgroundNoise,
            AddColorNoise,
            Compose,
            Gain,
            HighPassFilter,
            LowPassFilter,
            RoomSimulator,
        )

        noises = {"coloured noise": AddColorNoise(min_snr_db=5.0, max_snr_db=30.0, p=1.0)}
        if babble:
            noises["babble"] = AddBackgroundNoise(sounds_path=list(babble), min_snr_db=5.0, max_snr_db=30.0, p=1.0)
        self.stages = [  # (name, probability, transform), in order
            # image sources only: pyroomacoustics' ray tracing draws from its own unseeded RNG
            ("room", p_room, RoomSimulator(calculation_mode="rt60", use_ray_tracing=False, leave_length_unchanged=True, p=1.0)),
            ("noise", p_noise, noises),
            ("telephone", p_telephone, Compose([HighPassFilter(300, 300, 24, 24, p=1.0), LowPassFilter(3400, 3400, 24, 24, p=1.0)])),
            ("gain", p_gain, Gain(min_gain_db=-8.0, max_gain_db=6.0, p=1.0)),
        ]
        self.p_speed = p_speed

    def __call__(self, samples: np.ndarray, seed: int) -> tuple[np.ndarray, list[str]]:
        samples = np.asarray(samples, dtype=np.float32)
        applied = []
        with seeded(seed):
            if random.random() < self.p_speed:
                factor = round(random.uniform(0.9, 1.1), 3)
                samples = speed_perturb(samples, factor)
                applied.append(f"speed {factor}")
            for name, probability, transform in self.stages:
                if random.random() >= probability:
                    continue
                if isinstance(transform, dict):  # one of several
                    name = random.choice(sorted(transform))
                    transform = transform[name]
                samples = transform(samples=samples, sample_rate=SAMPLING_RATE).astype(np.float32)
                applied.append(name)
        peak = float(np.abs(samples).max()) if samples.size else 0.0
        return (samples * (MAX_PEAK / peak) if peak > MAX_PEAK else samples), applied
