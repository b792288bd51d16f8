"""Where long audio is cut into segments: in pauses, near the target length, never over the limit, nothing lost."""

import numpy as np
import pytest
import torch

from evaluation.recordings import RATE, real_recording_with_pauses
from long_audio import segment_bounds


def test_cuts_fall_in_the_pauses_between_real_recordings():
    audio, pauses = real_recording_with_pauses()
    assert len(audio) / RATE > 120
    bounds = segment_bounds(audio, RATE, target_seconds=20, longest_seconds=30)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(audio)
    assert all(end == next_start for (_, end), (next_start, _) in zip(bounds, bounds[1:]))  # no gap, no overlap
    assert all(end - start <= 30 * RATE for start, end in bounds)
    cuts = [end for _, end in bounds[:-1]]
    assert len(cuts) >= 4
    assert all(any(low <= cut <= high for low, high in pauses) for cut in cuts), cuts


def test_speech_without_pauses_is_still_cut_within_the_limit():
    noise = np.random.default_rng(0).normal(0, 0.1, 95 * RATE).astype(np.float32)
    bounds = segment_bounds(noise, RATE, target_seconds=20, longest_seconds=30)
    lengths = [(end - start) / RATE for start, end in bounds]
    assert sum(lengths) == pytest.approx(95) and max(lengths) <= 30 and min(lengths[:-1]) >= 5


def test_short_audio_is_one_segment_and_bad_settings_are_refused():
    clip = np.zeros(10 * RATE, dtype=np.float32)
    assert segment_bounds(clip, RATE) == [(0, len(clip))]
    with pytest.raises(ValueError, match="shortest_seconds <= target_seconds <= longest_seconds"):
        segment_bounds(clip, RATE, target_seconds=40, longest_seconds=30)


def test_a_long_recording_goes_segment_by_segment_through_the_pipeline(tiny_checkpoint):
    from transformers import pipeline

    import pipeline_speechllm  # noqa: F401  (registers speech-instruct)

    pipe = pipeline("speech-instruct", model=tiny_checkpoint)
    audio, _ = real_recording_with_pauses()
    limit = pipe.processor.max_samples
    assert len(audio) > 2 * limit  # the processor alone refuses it
    kwargs = dict(task="transcribe", sampling_rate=RATE, max_new_tokens=4, generate_kwargs={"min_new_tokens": 4})
    result = pipe(audio, return_timestamps=True, batch_size=4, **kwargs)
    bounds = segment_bounds(audio, RATE, target_seconds=2 * limit / RATE / 3, longest_seconds=limit / RATE)
    assert [chunk["timestamp"] for chunk in result["chunks"]] == [(start / RATE, end / RATE) for start, end in bounds]
    singles = [pipe(audio[start:end], **kwargs) for start, end in bounds]  # each segment alone, one by one
    assert [chunk["text"] for chunk in result["chunks"]] == singles
    assert result["text"] == " ".join(text for text in singles if text)
    assert pipe(audio, **kwargs) == result["text"]  # segments are the default for transcripts, without timestamps
    short = pipe(audio[: 3 * RATE], return_timestamps=True, **kwargs)
    assert short["chunks"] == [{"timestamp": (0.0, 3.0), "text": short["text"]}]
    with pytest.raises(ValueError, match="long_audio"):
        pipe(audio, task="transcribe", long_audio="whole", sampling_rate=RATE)


def test_a_long_recording_in_one_prompt_fills_one_span_with_every_windows_frames(tiny_checkpoint):
    """Mode (a): the encoder takes the recording window by window; all their mapper frames fill one placeholder
    span; a question about it gets one answer; batched equals one by one."""
    from transformers import pipeline

    import pipeline_speechllm  # noqa: F401  (registers speech-instruct)

    pipe = pipeline("speech-instruct", model=tiny_checkpoint)
    processor = pipe.processor
    audio, _ = real_recording_with_pauses()
    windows = processor.windows(audio)
    assert len(windows) == -(-len(audio) // processor.max_samples) and max(map(len, windows)) <= processor.max_samples
    assert np.array_equal(np.concatenate(windows), audio)
    conversation = [{"role": "user", "content": [{"type": "audio", "audio": audio}, {"type": "text", "text": "What is said?"}]}]
    prompt = processor.render_conversation(conversation)[0]
    batch = processor(text=[prompt], audio=[audio], sampling_rate=RATE, long_audio="one_prompt")
    assert batch["input_features"].shape[0] == len(windows)  # a row per window
    per_window = sum(int(processor.extract_features([w])["num_audio_tokens"][0]) for w in windows)
    assert int((batch["input_ids"] == processor.audio_token_id).sum()) == per_window
    with torch.no_grad():
        audio_features = pipe.model.get_audio_features(batch["input_features"], batch["input_features_mask"])
    assert int(audio_features.lengths.sum()) == per_window  # exactly as many mapper frames as placeholders
    kwargs = dict(task="answer", question="What is said?", sampling_rate=RATE, max_new_tokens=4, generate_kwargs={"min_new_tokens": 4})
    answer = pipe(audio, **kwargs)  # one prompt: the default for questions
    assert isinstance(answer, str) and answer
    short = audio[: 4 * RATE]
    assert pipe([audio, short], batch_size=2, **kwargs) == [answer, pipe(short, **kwargs)]
    with pytest.raises(ValueError, match="long_audio"):
        pipe(audio, long_audio="whole", **kwargs)


def test_a_prompt_beyond_the_llms_context_says_how_many_minutes_fit(tiny_checkpoint):
    from transformers import pipeline

    import pipeline_speechllm  # noqa: F401  (registers speech-instruct)

    pipe = pipeline("speech-instruct", model=tiny_checkpoint)
    pipe.model.config.text_config.max_position_embeddings = 200
    audio, _ = real_recording_with_pauses()
    with pytest.raises(ValueError, match=r"context is 200: about \d+ minutes of audio fit in one prompt"):
        pipe(audio, task="answer", question="What is said?", sampling_rate=RATE, max_new_tokens=2)


def test_a_list_longer_than_one_decoding_group_keeps_its_order(tiny_checkpoint):
    """Inputs are decoded a group at a time (4 × batch_size): across groups, outputs stay in input order."""
    from transformers import pipeline

    import pipeline_speechllm  # noqa: F401  (registers speech-instruct)

    pipe = pipeline("speech-instruct", model=tiny_checkpoint)
    audio, _ = real_recording_with_pauses(rounds=1)
    clips = [audio[i * RATE : (i + 1 + i % 3) * RATE] for i in range(6)]
    kwargs = dict(task="transcribe", sampling_rate=RATE, max_new_tokens=4, generate_kwargs={"min_new_tokens": 4})
    assert pipe(clips, batch_size=1, **kwargs) == [pipe(clip, **kwargs) for clip in clips]


def test_ten_minutes_are_never_turned_into_features_at_once(tiny_checkpoint):
    """Memory stays bounded: whatever the recording's length, the feature extractor sees at most one batch of
    window-sized clips per call, in either mode."""
    from transformers import pipeline

    import pipeline_speechllm  # noqa: F401  (registers speech-instruct)

    pipe = pipeline("speech-instruct", model=tiny_checkpoint)
    extractor = pipe.processor.feature_extractor
    calls = []
    original = type(extractor).__call__

    def recording_call(self, clips, *args, **kwargs):
        calls.append([len(clip) for clip in clips])
        return original(self, clips, *args, **kwargs)

    audio = np.random.default_rng(1).normal(0, 0.05, 600 * RATE).astype(np.float32)
    limit = pipe.processor.max_samples
    try:
        type(extractor).__call__ = recording_call
        pipe(audio, task="transcribe", sampling_rate=RATE, batch_size=4, max_new_tokens=1)
        segment_calls, calls[:] = list(calls), []
        pipe(audio[: 240 * RATE], instruction="What is said?", sampling_rate=RATE, max_new_tokens=1)  # fits the context
    finally:
        type(extractor).__call__ = original
    assert sum(map(len, segment_calls)) >= 600 * RATE // limit  # every segment went through, a batch at a time
    assert max(map(len, segment_calls)) <= 4 and max(max(c) for c in segment_calls) <= limit
    assert sum(map(len, calls)) == -(-240 * RATE // limit) and max(max(c) for c in calls) <= limit  # one prompt: windows
