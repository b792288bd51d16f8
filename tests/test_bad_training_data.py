"""Unusable training data: each bad row is skipped and counted by reason while training goes on with the rest, or
the run stops before any model is built with one message that names the file and the fix — never a traceback from
inside a library."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from conftest import ROOT, make_audio
from test_train import run_stage

from training.data import DataError

GOOD = {"the fox": 2.5, "the model": 2.75}


def write_manifest(directory, rows) -> str:
    path = directory / "rows.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    return str(path)


@pytest.fixture
def bad_matrix(tmp_path):
    """Two good clips and one row of each kind of trouble; the stereo 44.1 kHz clip is usable after conversion."""
    for i, (text, seconds) in enumerate(GOOD.items()):
        soundfile.write(tmp_path / f"good{i}.wav", make_audio(seconds, seed=i), 16000)
    stereo = np.stack([make_audio(2.5, seed=5, frequency=300), make_audio(2.5, seed=6, frequency=310)], axis=1)
    stereo_44k = np.repeat(stereo, 2, axis=0)[: int(2.5 * 44100)]  # any 44.1 kHz two-channel signal
    soundfile.write(tmp_path / "stereo.wav", stereo_44k, 44100)
    nan_clip = make_audio(2.5, seed=7)
    nan_clip[100:200] = np.nan
    soundfile.write(tmp_path / "nan.wav", nan_clip, 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (tmp_path / "notes.wav").write_text("this is not audio")
    soundfile.write(tmp_path / "long.wav", make_audio(31.0, seed=8), 16000)  # over the tiny model's 30 s
    rows = [{"id": f"good{i}", "audio": f"good{i}.wav", "transcript": text, "task": "asr"} for i, text in enumerate(GOOD)]
    rows += [
        {"id": "stereo-44k", "audio": "stereo.wav", "transcript": "two channels", "task": "asr"},
        {"id": "missing-file", "audio": "nowhere.wav", "transcript": "x", "task": "asr"},
        {"id": "not-audio", "audio": "notes.wav", "transcript": "x", "task": "asr"},
        {"id": "empty", "audio": "empty.wav", "transcript": "x", "task": "asr"},
        {"id": "nan", "audio": "nan.wav", "transcript": "x", "task": "asr"},
        {"id": "too-long", "audio": "long.wav", "transcript": "x", "task": "asr"},
        {"id": "no-transcript", "audio": "good0.wav", "task": "asr"},
        {"id": "odd-task", "audio": "good0.wav", "transcript": "x", "task": "summarise"},
    ]
    return write_manifest(tmp_path, rows)


def test_bad_rows_are_skipped_and_counted_by_reason_while_the_rest_trains(bad_matrix, seamless_checkpoint, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        trainer = run_stage("mapper", seamless_checkpoint, bad_matrix, tmp_path / "a", "--feature_cache_dir", str(tmp_path / "c"), steps=2)
    assert sorted(trainer.train_dataset["id"]) == ["good0", "good1", "stereo-44k"]  # stereo 44.1 kHz converted, kept
    text = caplog.text
    assert (
        "train: 3 of 10 rows usable, 7 skipped as bad (1 audio file does not exist, 1 not an audio file, 1 empty audio, "
        "1 NaN or infinite samples, 1 audio too long, 1 asr row without transcript, 1 unknown task), 0 with no task for "
        "this stage"
    ) in text
    for row_id, says in [
        ("missing-file", "nowhere.wav' does not exist"),
        ("not-audio", "cannot decode audio"),
        ("empty", "audio has 0 samples"),
        ("nan", "contains NaN or infinite samples"),
        ("too-long", "lasts 31.0 s, longer than the maximum 30.0 s"),
        ("no-transcript", "task asr needs transcript"),
        ("odd-task", "unknown task 'summarise'"),
    ]:
        assert f"skipping row {row_id}: " in text and says in text.split(f"skipping row {row_id}: ")[1].splitlines()[0]
    assert len([entry for entry in trainer.state.log_history if "loss" in entry]) == 2


def test_a_manifest_whose_rows_are_all_unusable_stops_before_training(seamless_checkpoint, tmp_path):
    soundfile.write(tmp_path / "short.wav", make_audio(0.5), 16000)
    long_text = "a transcript far too long for half a second of audio " * 3
    path = write_manifest(tmp_path, [{"id": f"r{i}", "audio": "short.wav", "transcript": long_text} for i in range(3)])
    with pytest.raises(DataError) as error:
        run_stage("mapper", seamless_checkpoint, path, tmp_path / "a", "--feature_cache_dir", str(tmp_path / "c"), steps=2)
    message = str(error.value)
    assert "train: 0 of 3 rows usable, 3 skipped as bad (3 transcript longer than its audio's mapper frames)" in message
    assert "fix the rows logged above" in message
    assert not (tmp_path / "c").exists()  # stopped before building the model or caching features


def test_an_unusable_eval_file_stops_with_its_own_name(manifest, seamless_checkpoint, tmp_path):
    path = write_manifest(tmp_path, [{"id": "e0", "audio": "gone.wav", "transcript": "x", "task": "asr"}])
    with pytest.raises(DataError, match=r"eval: 0 of 1 rows usable, 1 skipped as bad \(1 audio file does not exist\)"):
        run_stage("mapper", seamless_checkpoint, manifest, tmp_path / "a", "--eval_file", path, "--feature_cache_dir", str(tmp_path / "c"), steps=1)
    assert not (tmp_path / "c").exists()  # the eval file is checked before the model is built


@pytest.mark.parametrize("stage, missing", [("joint", "sqa"), ("text", "sqa \\(as qa examples\\)")])
def test_a_sampled_task_without_usable_rows_stops_the_run(stage, missing, seamless_checkpoint, tmp_path):
    soundfile.write(tmp_path / "a.wav", make_audio(2.5), 16000)
    rows = [
        {"id": "asr", "audio": "a.wav", "transcript": "the fox", "task": "asr"},
        {"id": "st", "audio": "a.wav", "transcript": "the fox", "task": "st", "tgt_lang": "de", "translation": "der Fuchs"},
        {"id": "sqa-broken", "audio": "a.wav", "transcript": "the fox", "task": "sqa", "question": "who?"},  # no answer
    ]
    path = write_manifest(tmp_path, rows)
    with pytest.raises(DataError, match=f"names {missing}, but the usable rows give none") as error:
        run_stage(stage, seamless_checkpoint, path, tmp_path / "out", "--task_probabilities", "asr=0.3,st=0.4,sqa=0.3", steps=1)
    assert "--task_probabilities asr=0.3,st=0.4" in str(error.value)


def test_the_command_line_names_a_missing_manifest_without_a_traceback(seamless_checkpoint, tmp_path):
    command = [
        sys.executable, os.path.join(ROOT, "train.py"), "--stage", "mapper", "--model_name_or_path", seamless_checkpoint,
        "--train_file", str(tmp_path / "absent.jsonl"), "--output_dir", str(tmp_path / "out"), "--report_to", "none",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert f"train.py: manifest {tmp_path / 'absent.jsonl'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "content, says",
    [("{not json\n", "must hold one JSON object per line"), ("", "has no rows")],
    ids=["broken-json", "empty-file"],
)
def test_an_unreadable_manifest_is_named(content, says, tmp_path):
    from training.data import read_rows

    path = tmp_path / "rows.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=f"{path}.*{says}|{says}"):
        read_rows(str(path))


def test_several_manifests_are_read_as_one_each_resolving_its_own_audio(tmp_path):
    """train_file may name several builds (natural voices beside fast ones): their shared columns, every relative
    path resolved against its own manifest; a bad one among them is still named."""
    from training.data import read_manifests

    first, second = tmp_path / "natural", tmp_path / "fast"
    for directory, extra in ((first, {"voice": "kokoro:a"}), (second, {"genre": "prose"})):
        (directory / "audio").mkdir(parents=True)
        soundfile.write(directory / "audio" / "clip.wav", make_audio(1.0), 16000)
        write_manifest(directory, [{"id": "clip", "audio": "audio/clip.wav", "transcript": directory.name, **extra}])
    rows = read_manifests([str(first / "rows.jsonl"), str(second / "rows.jsonl")])
    assert rows["audio_source"] == [str(first / "audio" / "clip.wav"), str(second / "audio" / "clip.wav")]
    assert rows["transcript"] == ["natural", "fast"] and rows["id"] == ["clip", "clip"]
    assert "voice" not in rows.column_names and "genre" not in rows.column_names  # not in every manifest
    assert read_manifests(str(first / "rows.jsonl"))["transcript"] == ["natural"]
    with pytest.raises(DataError, match="absent.jsonl does not exist"):
        read_manifests([str(first / "rows.jsonl"), str(tmp_path / "absent.jsonl")])
