"""Augmentation: deterministic per seed, leaves the global RNGs alone, and does what each stage says."""

import numpy as np
import pytest
import soundfile
from conftest import make_audio

from synthesis.augmentation import MAX_PEAK, Augmenter, speed_perturb


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy - clean
    return 10 * np.log10(np.mean(clean**2) / np.mean(noise**2))


def test_the_same_seed_gives_the_same_samples_and_the_global_rngs_are_untouched():
    augment = Augmenter(p_speed=0.5, p_room=0.5, p_noise=0.5, p_telephone=0.5, p_gain=0.5)
    clip = make_audio(2.0, seed=1)
    np.random.seed(7)
    state = np.random.get_state()[1].copy()
    first = [augment(clip, seed) for seed in range(12)]
    assert np.array_equal(np.random.get_state()[1], state)
    again = [augment(clip, seed) for seed in reversed(range(12))][::-1]  # order of calls does not matter
    for (a, applied_a), (b, applied_b) in zip(first, again):
        assert applied_a == applied_b and np.array_equal(a, b)
    assert len({tuple(applied) for _, applied in first}) > 3  # seeds choose different chains
    assert all(np.abs(samples).max() <= MAX_PEAK + 1e-6 for samples, _ in first)


def test_each_stage_does_what_it_says(tmp_path):
    clip = make_audio(2.0, seed=2, frequency=300)
    assert len(speed_perturb(clip, 1.1)) == pytest.approx(len(clip) / 1.1, abs=2)
    only = dict(p_speed=0.0, p_room=0.0, p_noise=0.0, p_telephone=0.0, p_gain=0.0)
    noisy, applied = Augmenter(**{**only, "p_noise": 1.0})(clip, seed=3)
    assert applied == ["coloured noise"] and 4.5 < snr_db(clip, noisy) < 30.5
    soundfile.write(tmp_path / "babble.wav", make_audio(3.0, seed=9, frequency=180), 16000)
    babble = Augmenter(babble=[str(tmp_path / "babble.wav")], **{**only, "p_noise": 1.0})
    kinds = {tuple(babble(clip, seed)[1]) for seed in range(8)}
    assert kinds == {("babble",), ("coloured noise",)}
    hum = (0.3 * np.sin(2 * np.pi * 100 * np.arange(32000) / 16000)).astype(np.float32)
    phone, applied = Augmenter(**{**only, "p_telephone": 1.0})(hum, seed=0)
    assert applied == ["telephone"] and np.std(phone[4000:]) < 0.05 * np.std(hum)  # 100 Hz is below the band
    room, applied = Augmenter(**{**only, "p_room": 1.0})(clip, seed=5)
    assert applied == ["room"] and len(room) == len(clip) and not np.allclose(room, clip, atol=1e-3)
