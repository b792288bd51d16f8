"""The voices: Kokoro pseudo-speakers built from style blends, the speak command, and the intelligibility rule."""

import numpy as np
import pytest
import soundfile

from synthesis import kokoro
from synthesis.intelligibility import TEST_SENTENCES, voice_wer
from synthesis.speak import (
    MAX_WER,
    SAMPLING_RATE,
    Speaker,
    Voice,
    candidate_voices,
    main,
    read_measurements,
    shipped_voices,
)


@pytest.fixture(scope="module")
def speaker():
    return Speaker()


def test_pseudo_speakers_take_timbre_and_prosody_from_their_own_blends():
    styles = {name: np.random.default_rng(i).standard_normal((510, 1, 256)).astype(np.float32) for i, name in enumerate(kokoro.BASE_STYLES)}
    swap = kokoro.SPEAKERS["kokoro-kumo-timbre-alpha-prosody"]
    style = kokoro.speaker_style(styles, swap)
    assert np.array_equal(style[..., :128], styles["jm_kumo"][..., :128])
    assert np.array_equal(style[..., 128:], styles["jf_alpha"][..., 128:])
    extrapolated = kokoro.speaker_style(styles, kokoro.SPEAKERS["kokoro-kumo130-alpha-30"])
    assert np.allclose(extrapolated, 1.3 * styles["jm_kumo"] - 0.3 * styles["jf_alpha"], atol=1e-5)
    assert len(kokoro.SPEAKERS) == len(kokoro.PSEUDO_SPEAKERS) >= 30  # names are unique
    recipes = {(s.timbre, s.prosody, s.accent) for s in kokoro.PSEUDO_SPEAKERS}
    assert len(recipes) == len(kokoro.PSEUDO_SPEAKERS)  # no two speakers are the same voice


def test_only_measured_intelligible_voices_are_listed(capsys):
    main(["--list-voices"])
    listed = capsys.readouterr().out.split()
    measured = read_measurements()
    assert listed == [voice.key for voice in shipped_voices()]
    assert all(measured[name] <= MAX_WER for name in listed)
    dropped = [voice.key for voice in candidate_voices() if measured[voice.key] > MAX_WER]
    assert not set(dropped) & set(listed)
    assert len({Voice.from_key(name).name for name in listed if name.startswith("kokoro:")}) >= 25
    assert all(voice.key in measured for voice in candidate_voices())  # every candidate was measured


@pytest.mark.parametrize(
    "name",
    ["kokoro:kokoro-kumo70-gongitsune30:1.0:50", "kokoro:kokoro-tebukuro-timbre-gongitsune-prosody:1.0:50", "piper:joe:0.95:50"],
)
def test_a_sample_of_voices_is_as_intelligible_as_recorded(name, speaker, part_cache):
    """Speaking and transcribing again gives the recorded WER (within one word: onnxruntime's int8 kernels may differ
    slightly between processors), and it is within the limit: a change to a voice recipe or the phonemes shows here."""
    from conversion.parts import whisper_tiny_en
    from evaluation.run import WhisperTranscriber

    wer = voice_wer(speaker, WhisperTranscriber(whisper_tiny_en()), Voice.from_key(name), TEST_SENTENCES)
    words = sum(len(sentence.split()) for sentence in TEST_SENTENCES)
    assert wer == pytest.approx(read_measurements()[name], abs=1.01 / words) and wer <= MAX_WER


def test_speak_writes_16k_mono_wav_with_a_normalised_peak(tmp_path, capsys):
    path = tmp_path / "hello.wav"
    main(["--voice", "kokoro:kokoro-kumo:1.0:50", "--text", "Hello, this is a test.", "--out", str(path)])
    samples, rate = soundfile.read(path)
    assert rate == SAMPLING_RATE and samples.ndim == 1 and len(samples) > 0.8 * SAMPLING_RATE
    assert 0.5 < np.abs(samples).max() <= kokoro.PEAK + 0.02  # kumo peaks above 1.0 before normalisation
    with pytest.raises(SystemExit):
        main(["--voice", "kokoro:nobody:1.0:50", "--text", "x", "--out", str(path)])
    assert "unknown or unshipped voice" in capsys.readouterr().err
