"""The processor and the pipeline: every audio input form, the prompt, and a clear error for each bad input."""

import copy
import io

import numpy as np
import pytest
import soundfile
import torch
from conftest import greedy, make_audio

from pipeline_speechllm import task_instruction
from processing_speechllm import load_audio


def wav_bytes(samples, rate=16000):
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV")
    return buffer.getvalue()


def test_all_audio_forms_decode_to_the_same_samples(tmp_path):
    clip = make_audio(1.0)
    path = tmp_path / "clip.wav"
    soundfile.write(path, clip, 16000, subtype="FLOAT")
    forms = [str(path), path, path.read_bytes(), (clip, 16000), {"array": clip, "sampling_rate": 16000}, (torch.from_numpy(clip), 16000)]
    for form in forms:
        audio, rate = form if isinstance(form, tuple) else (form, None)
        np.testing.assert_allclose(load_audio(audio, rate, 16000), clip, atol=1e-6)


def test_wrong_sampling_rate_is_resampled_and_stereo_averaged():
    clip_8k = make_audio(1.0)[::2]
    assert len(load_audio(clip_8k, 8000, 16000)) == 16000
    left, right = make_audio(1.0, seed=1), make_audio(1.0, seed=2)
    np.testing.assert_allclose(load_audio(np.stack([left, right], axis=1), 16000, 16000), (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize(
    "audio, rate, message",
    [
        (np.zeros(0, dtype=np.float32), 16000, "audio has 0 samples"),
        (np.array([0.1, np.nan] * 8000, dtype=np.float32), 16000, "NaN or infinite"),
        (np.array([0.1, np.inf] * 8000, dtype=np.float32), 16000, "NaN or infinite"),
        (b"this is not a wav file at all", None, "cannot decode audio"),
        ("/no/such/file.wav", None, "does not exist"),
        (make_audio(1.0), None, "needs its sampling_rate"),
        ([1, 2, 3], 16000, "unsupported audio type"),
    ],
)
def test_bad_audio_raises_a_value_error_naming_it(audio, rate, message):
    with pytest.raises(ValueError, match=message):
        load_audio(audio, rate, 16000)


def test_non_audio_file_is_refused(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("hello, I am text")
    with pytest.raises(ValueError, match="audio 0: cannot decode audio"):
        load_audio(str(path), None, 16000, name="audio 0")


def test_too_short_and_too_long_audio_are_refused(tiny):
    _, processor = tiny
    with pytest.raises(ValueError, match=r"audio 1 is too short \(0\.020 s\)"):
        processor(text=[processor.audio_token] * 2, audio=[make_audio(1.0), make_audio(0.02)], sampling_rate=16000)
    with pytest.raises(ValueError, match=r"audio 0 lasts 31\.0 s, longer than the maximum 30\.0 s .*max_audio_seconds, "
                       r"which you can raise.*long_audio='segments'.*long_audio='one_prompt'"):
        processor(text=processor.audio_token, audio=make_audio(31.0), sampling_rate=16000)


def test_max_audio_seconds_is_a_limit_the_user_can_raise_up_to_the_encoders_window(tiny, tiny_whisper):
    processor = copy.deepcopy(tiny[1])  # Seamless: no window of its own
    processor.max_audio_seconds = 40
    placeholders = [
        int((processor(text=processor.audio_token, audio=make_audio(seconds), sampling_rate=16000)["input_ids"]
             == processor.audio_token_id).sum())
        for seconds in (29.0, 31.0, 39.0)
    ]
    assert placeholders[0] < placeholders[1] < placeholders[2]  # all of it taken, nothing cut at 30 s
    whisper = copy.deepcopy(tiny_whisper[1])
    whisper.max_audio_seconds = 40
    with pytest.raises(ValueError, match=r"longer than the maximum 30\.0 s .*the encoder's 30 s window"):
        whisper(text=whisper.audio_token, audio=make_audio(31.0), sampling_rate=16000)


def test_placeholder_and_audio_counts_must_match(tiny):
    _, processor = tiny
    with pytest.raises(ValueError, match="holds 0 audio placeholders .* but 1 audios were given"):
        processor(text="no placeholder here", audio=make_audio(1.0), sampling_rate=16000)
    with pytest.raises(ValueError, match="holds 2 audio placeholders .* but 1 audios were given"):
        processor(text=processor.audio_token * 2, audio=make_audio(1.0), sampling_rate=16000)


def test_unknown_target_language_and_task():
    with pytest.raises(ValueError, match="unknown target language 'xx'"):
        task_instruction("translate", "xx", None)
    with pytest.raises(ValueError, match="unknown task 'summarise'"):
        task_instruction("summarise", None, None)
    assert "Deutsche" in task_instruction("translate", "de", None)
    assert task_instruction("answer", None, "Who spoke?") == "Who spoke?"


def test_prompt_follows_the_papers_template_inside_the_chat_format(tiny):
    _, processor = tiny
    conversation = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [{"type": "audio", "audio": make_audio(1.0)}, {"type": "text", "text": "Who speaks?"}]},
    ]
    prompt = processor.apply_chat_template(conversation, tokenize=False)
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<speech><|audio|></speech>\n Question: Who speaks?\n\nYour answer:<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_multi_turn_chat_with_two_audios(tiny):
    model, processor = tiny
    conversation = [
        {"role": "user", "content": [{"type": "audio", "audio": make_audio(1.0)}, {"type": "text", "text": "Transcribe."}]},
        {"role": "assistant", "content": "the fox"},
        {"role": "user", "content": [{"type": "audio", "audio": make_audio(2.0, seed=3)}, {"type": "text", "text": "And this?"}]},
    ]
    batch = processor.apply_chat_template(conversation, sampling_rate=16000)
    assert batch["input_features"].shape[0] == 2
    counts = model.get_audio_features(batch["input_features"], batch["input_features_mask"]).lengths
    assert int((batch["input_ids"] == processor.audio_token_id).sum()) == int(counts.sum())
    assert greedy(model, batch).shape == (1, 8)


def test_audio_is_right_padded_and_text_left_padded(tiny):
    _, processor = tiny
    batch = processor(text=[processor.audio_token, "a b c d e f " + processor.audio_token],
                      audio=[make_audio(2.0), make_audio(0.7)], sampling_rate=16000)
    assert batch["attention_mask"][1, 0] == 1 and batch["attention_mask"][0, 0] == 0  # left padding
    mask = batch["input_features_mask"]
    assert mask[0].all() and mask[1, 0] == 1 and mask[1, -1] == 0  # right padding


def test_in_repo_pipeline_without_remote_code(tiny_checkpoint, tmp_path):
    from transformers import pipeline

    pipe = pipeline("speech-instruct", model=tiny_checkpoint)
    assert type(pipe).__module__ == "pipeline_speechllm"
    clips = [make_audio(s, seed=i) for i, s in enumerate([0.8, 2.2, 1.3])]
    path = tmp_path / "clip.wav"
    soundfile.write(path, clips[0], 16000)
    kwargs = dict(task="transcribe", max_new_tokens=6, generate_kwargs={"min_new_tokens": 6})
    one = pipe(str(path), **kwargs)
    assert isinstance(one, str) and one == pipe(wav_bytes(clips[0]), **kwargs)
    batched = pipe(clips, sampling_rate=16000, batch_size=2, **kwargs)
    singles = [pipe(c, sampling_rate=16000, **kwargs) for c in clips]
    assert batched == singles and len(batched) == 3
    # the pipeline output is the model's own greedy decoding
    inputs = pipe.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "audio", "audio": clips[1]}, {"type": "text", "text": task_instruction("transcribe", None, None)}]}],
        sampling_rate=16000,
    )
    tokens = greedy(pipe.model, inputs, max_new_tokens=6)[0]
    assert singles[1] == pipe.processor.decode(tokens, skip_special_tokens=True).strip()


def test_streamed_pieces_join_to_the_pipelines_output(tiny_checkpoint):
    import threading

    from transformers import TextIteratorStreamer, pipeline

    pipe = pipeline("speech-instruct", model=tiny_checkpoint)
    clip = make_audio(1.5, seed=3)
    kwargs = dict(task="transcribe", sampling_rate=16000, max_new_tokens=8, generate_kwargs={"min_new_tokens": 8})
    streamer = TextIteratorStreamer(pipe.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    outputs = []
    worker = threading.Thread(target=lambda: outputs.append(pipe(clip, streamer=streamer, **kwargs)))
    worker.start()
    pieces = list(streamer)
    worker.join()
    assert len(pieces) > 1 and "".join(pieces).strip() == outputs[0] == pipe(clip, **kwargs)
    with pytest.raises(ValueError, match="one generation"):
        pipe([clip, clip], streamer=TextIteratorStreamer(pipe.processor.tokenizer), batch_size=2, **kwargs)


@pytest.mark.parametrize("kind", ["whisper", "seamless"])
def test_a_clip_decodes_the_same_batched_as_alone(kind):
    """Issue 42: Whisper's extractor computed a short clip's last frames over a longer clip's padding, and the tiny
    checkpoint's second clip then read different tokens from the third on. Every encoder: batched = alone."""
    from transformers import pipeline

    from scripts.make_tiny_checkpoint import build_tiny

    model, processor = build_tiny(kind, seed=0)
    pipe = pipeline("speech-instruct", model=model, processor=processor)
    clips = [make_audio(seconds, seed=i, frequency=150 + 40 * i) for i, seconds in enumerate([2.77, 1.3, 0.91, 2.1])]
    kwargs = dict(task="transcribe", sampling_rate=16000, max_new_tokens=8, generate_kwargs={"min_new_tokens": 8})
    batched = pipe(clips, batch_size=4, **kwargs)
    alone = [pipe(clip, **kwargs) for clip in clips]
    assert batched == alone
    features = processor.extract_features(clips)
    single = processor.extract_features(clips[1:2])
    frames = single["input_features_mask"].sum()
    if kind == "whisper":
        torch.testing.assert_close(features["input_features"][1:2, :, :frames], single["input_features"][..., :frames])
    else:
        torch.testing.assert_close(features["input_features"][1:2, :frames], single["input_features"][:, :frames])
