"""Data sources by name (training/sources.py): audiofolders, saved datasets, parquet folders laid out as on the Hub,
column mapping, splits, held-out speakers, streaming and mixing weights — and a clear error for each bad source."""

import io
import json
import logging

import datasets
import numpy as np
import pytest
import soundfile
import torch
from conftest import make_audio
from test_train import losses, run_stage

from training.data import (
    AudioAugmentation,
    InstructionCollator,
    apply_source_weights,
    draw_augmentation,
    keep_usable_rows,
    read_manifests,
    read_rows,
)
from training.sources import DataError, is_dev_speaker, parse_source, sentence_case

SPEAKERS = [f"{i:04d}" for i in range(1, 13)]


@pytest.fixture(scope="module")
def audiofolder(tmp_path_factory):
    """speechocean762's layout: train/ and test/, Opus clips, metadata.jsonl with upper-case `text` and `speaker`."""
    root = tmp_path_factory.mktemp("audiofolder")
    for split, speakers in (("train", SPEAKERS[:8]), ("test", SPEAKERS[8:])):
        (root / split).mkdir()
        rows = []
        for i, speaker in enumerate(speakers):
            name = f"{speaker}{i:03d}.opus"
            soundfile.write(root / split / name, make_audio(2.5, seed=i), 16000, format="OGG", subtype="OPUS")
            rows.append({"file_name": name, "text": f"I SAW THE FOX NUMBER {i}", "speaker": speaker, "age": 6 + i})
        (root / split / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def wav_bytes(seconds: float, seed: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, make_audio(seconds, seed=seed), 16000, format="WAV")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def parquet_folder(tmp_path_factory):
    """A Hub dataset's layout: data/{split}-*.parquet, audio as {bytes, path}, a `sentence` column; one clip's bytes
    are not audio."""
    root = tmp_path_factory.mktemp("hub-layout")
    (root / "data").mkdir()
    for split, count in (("train", 6), ("validation", 2)):
        audio = [{"bytes": wav_bytes(2.5, seed=i), "path": f"{split}{i}.wav"} for i in range(count)]
        if split == "train":
            audio[5] = {"bytes": b"not audio at all", "path": "broken.wav"}
        table = datasets.Dataset.from_dict({"audio": audio, "sentence": [f"the {split} clip {i}" for i in range(count)]})
        table.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


def test_audiofolder_by_split_with_column_mapping_and_sentence_case(audiofolder):
    rows = read_rows({"path": str(audiofolder), "split": "test", "text_column": "text", "text_case": "sentence"})
    assert len(rows) == 4 and sorted(set(rows["speaker"])) == SPEAKERS[8:]
    assert rows[0]["transcript"] == "I saw the fox number 0"  # sentence case, "I" kept upper case
    assert rows[0]["task"] == "asr" and rows[0]["audio_source"].endswith(".opus")
    samples, rate = soundfile.read(rows[0]["audio_source"])
    assert rate == 16000 and abs(len(samples) - 2.5 * rate) < 0.05 * rate  # Opus decodes with soundfile (no torchcodec)
    same = read_rows(str(audiofolder / "train"), text_column="text")  # the split's own folder, the run's defaults
    assert len(same) == 8 and same[0]["transcript"] == "I SAW THE FOX NUMBER 0"


def test_held_out_speakers_are_disjoint_and_cover_the_split(audiofolder):
    source = {"path": str(audiofolder), "text_column": "text", "dev_speaker_share": 0.3}
    train = read_rows({**source, "speakers": "train"})
    dev = read_rows({**source, "speakers": "dev"})
    assert set(train["speaker"]).isdisjoint(dev["speaker"])
    assert sorted(set(train["speaker"]) | set(dev["speaker"])) == SPEAKERS[:8]
    assert sorted(set(dev["speaker"])) == [s for s in SPEAKERS[:8] if is_dev_speaker(s, 0.3)]
    assert 0 < len(dev) < 8


def test_parquet_folder_like_the_hub_decodes_bytes_and_skips_the_broken_clip(parquet_folder, tiny_checkpoint, caplog):
    from processing_speechllm import SpeechLLMProcessor

    rows = read_rows(str(parquet_folder), split="train", text_column="sentence")
    assert rows["transcript"][:2] == ["the train clip 0", "the train clip 1"]
    assert isinstance(rows[0]["audio_source"], bytes)
    processor = SpeechLLMProcessor.from_pretrained(tiny_checkpoint)
    with caplog.at_level(logging.WARNING, logger="speechllm.data"):
        usable = keep_usable_rows(rows, lambda row: ("asr",), processor, False, "hub")
    assert len(usable) == 5
    assert "skipping row 5: audio: cannot decode audio" in caplog.text
    validation = read_rows(str(parquet_folder), split="validation", text_column="sentence")
    assert validation["transcript"] == ["the validation clip 0", "the validation clip 1"]


def test_streaming_reads_only_the_first_rows(parquet_folder):
    rows = read_rows({"path": str(parquet_folder), "streaming": True, "max_rows": 3, "text_column": "sentence"})
    assert rows["transcript"] == ["the train clip 0", "the train clip 1", "the train clip 2"]
    assert isinstance(rows[2]["audio_source"], bytes)


def test_mixing_weights_repeat_or_thin_each_source(audiofolder, manifest):
    mixed = read_manifests([manifest, {"path": str(audiofolder), "text_column": "text", "weight": 2.5}])
    weighted = apply_source_weights(mixed, seed=0)
    from_folder = [row for row in weighted["audio_source"] if row and row.endswith(".opus")]
    assert len(from_folder) in range(16, 25) and len(set(from_folder)) == 8  # each twice, a seeded half once more
    assert len(from_folder) == len([r for r in apply_source_weights(mixed, seed=0)["audio_source"] if r and r.endswith(".opus")])
    assert len(weighted) - len(from_folder) == 12  # the manifest's rows (weight 1) once each
    half = apply_source_weights(read_rows({"path": str(audiofolder), "text_column": "text", "weight": 0.5}), seed=1)
    assert 0 < len(half) < 8


def test_where_keeps_the_rows_whose_columns_hold_its_values(audiofolder, annotations):
    folder = {"path": str(audiofolder), "text_column": "text", "text_case": "sentence"}
    two = read_rows({**folder, "where": {"speaker": [SPEAKERS[1], SPEAKERS[4]]}})
    assert sorted(two["speaker"]) == [SPEAKERS[1], SPEAKERS[4]]
    assert read_rows({**folder, "where": {"speaker": SPEAKERS[2], "age": 8}})["transcript"] == ["I saw the fox number 2"]
    # annotation columns count too: only the Italian ST rows of the clips with translations
    italian = read_rows({**folder, "translations": str(annotations / "translations.jsonl"), "where": {"tgt_lang": "it"}})
    assert sorted(italian["translation"]) == [f"Ho visto la volpe numero {i}" for i in range(3)]
    # listed again with a weight, a share of the mix grows: here speaker 0001's clip counts three times
    mixed = apply_source_weights(read_manifests([folder, {**folder, "where": {"speaker": SPEAKERS[0]}, "weight": 2}]))
    assert sorted(mixed["speaker"]) == sorted([*SPEAKERS[:8], SPEAKERS[0], SPEAKERS[0]])


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"text_column": "words"}, "no column 'words' for transcript (its columns: text, speaker, age, audio): pass --text_column"),
        ({"split": "dev"}, "has no split 'dev'"),
        ({"speakers": "dev", "speaker_column": "talker"}, "there is no 'talker'"),
        ({"colour": "red"}, "unknown option(s) colour"),
        ({"weight": 0}, "weight must be positive"),
        ({"speakers": "half"}, "speakers must be one of all, train, dev"),
        ({"where": {"accent": "uk"}}, "\"where\" names a column 'accent' it does not have (its columns: "),
        ({"where": {"speaker": ["9999", "9998"]}}, "no row has {'speaker': ['9999', '9998']} (the values there: {'speaker': ['0001', "),
        ({"where": "speaker=0001"}, "where must map columns to a value or a list of values"),
        ({"augment": 1.5}, "augment is the share of rows heard augmented, from 0 to 1 (got 1.5)"),
        ({"augment": "yes"}, "augment is the share of rows heard augmented, from 0 to 1 (got 'yes')"),
    ],
)
def test_bad_sources_name_the_fix(audiofolder, spec, message):
    with pytest.raises(DataError) as caught:
        read_rows({"path": str(audiofolder), **spec})
    assert message in str(caught.value)


def test_missing_split_of_a_parquet_folder_and_an_unreachable_hub_id(parquet_folder):
    with pytest.raises(DataError, match="has no split 'test'.*pass --split"):
        read_rows(str(parquet_folder), split="test")
    with pytest.raises(DataError, match="a Hub id: with no network"):
        read_rows("nobody-here/no-such-dataset")
    with pytest.raises(DataError, match="does not exist"):
        read_rows("outputs/no-such-manifest.jsonl")
    with pytest.raises(DataError, match="write it as a JSON object"):
        parse_source('{"path": oops}')


def test_sentence_case():
    assert sentence_case("WE CALL IT BEAR") == "We call it bear"
    assert sentence_case("I'M SURE I CAN") == "I'm sure I can"


def test_joint_stage_trains_on_an_audiofolder_mixed_with_a_manifest(audiofolder, manifest, seamless_checkpoint, tmp_path):
    source = json.dumps({"path": str(audiofolder), "text_column": "text", "text_case": "sentence", "weight": 2})
    trainer = run_stage("joint", seamless_checkpoint, manifest, tmp_path / "c", "--train_file", manifest, source,
                        "--task_probabilities", "asr=0.5,st=0.3,sqa=0.2", steps=3)
    examples = trainer.train_dataset
    folder_rows = [i for i, audio in enumerate(examples["audio_source"]) if audio and audio.endswith(".opus")]
    assert len(folder_rows) == 16 and {examples[i]["as_task"] for i in folder_rows} == {"asr"}
    assert "I saw the fox number 3" in examples["transcript"]
    assert len(losses(trainer)) == 3 and all(np.isfinite(losses(trainer)))


def test_evaluation_cli_says_what_is_wrong_without_a_traceback(audiofolder, tiny_checkpoint, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "evaluation.run", "--model", tiny_checkpoint, "--data", str(audiofolder),
         "--text_column", "sentence", "--output_dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode != 0
    assert "no column 'sentence' for transcript" in result.stderr and "Traceback" not in result.stderr


def test_train_flags_name_the_split_and_columns_of_every_source(audiofolder, seamless_checkpoint, tmp_path):
    trainer = run_stage("joint", seamless_checkpoint, str(audiofolder), tmp_path / "c", "--train_split", "test",
                        "--text_column", "text", "--task_probabilities", "asr=1", steps=2)
    assert sorted(set(trainer.train_dataset["speaker"])) == SPEAKERS[8:]
    assert trainer.train_dataset[0]["transcript"].startswith("I SAW THE FOX")
    assert len(losses(trainer)) == 2


# ---------------------------------------------------------------------------------------------------------------
# ST and SQA rows on a corpus's own clips (annotation files keyed by transcript)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def annotations(tmp_path_factory):
    """Translations for clips 0-2 of the audiofolder's train split (clip 1 lacks Chinese), questions for clips 0 and 3,
    keyed by the sentence-cased transcripts, as the builds write them."""
    root = tmp_path_factory.mktemp("annotations")
    translations = [
        {"text": "I saw the fox number 0", "de": "Ich sah den Fuchs Nummer 0", "it": "Ho visto la volpe numero 0", "zh": "我看到了0号狐狸"},
        {"text": "I saw the fox number 1", "de": "Ich sah den Fuchs Nummer 1", "it": "Ho visto la volpe numero 1"},
        {"text": "I saw the fox number 2", "de": "Ich sah den Fuchs Nummer 2", "it": "Ho visto la volpe numero 2", "zh": "我看到了2号狐狸"},
    ]
    questions = [
        {"text": "I saw the fox number 0", "questions": [{"question": "What did I see?", "answer": "the fox"}], "dropped": []},
        {"text": "I saw the fox number 3", "questions": [{"question": "Which number?", "answer": "3"},
                                                          {"question": "What animal?", "answer": "fox"}], "dropped": []},
    ]
    for name, rows in (("translations.jsonl", translations), ("questions.jsonl", questions)):
        (root / name).write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return root


def test_translations_and_questions_turn_a_corpus_into_st_and_sqa_rows(audiofolder, annotations):
    source = {"path": str(audiofolder), "text_column": "text", "text_case": "sentence",
              "translations": str(annotations / "translations.jsonl"), "questions": str(annotations / "questions.jsonl")}
    rows = read_rows(source)
    st = sorted((row["transcript"][-1], row["tgt_lang"], row["translation"]) for row in rows if row["task"] == "st")
    assert st == [("0", "de", "Ich sah den Fuchs Nummer 0"), ("0", "it", "Ho visto la volpe numero 0"), ("0", "zh", "我看到了0号狐狸"),
                  ("1", "de", "Ich sah den Fuchs Nummer 1"), ("1", "it", "Ho visto la volpe numero 1"),
                  ("2", "de", "Ich sah den Fuchs Nummer 2"), ("2", "it", "Ho visto la volpe numero 2"), ("2", "zh", "我看到了2号狐狸")]
    sqa = sorted((row["transcript"][-1], row["question"], row["answer"]) for row in rows if row["task"] == "sqa")
    assert sqa == [("0", "What did I see?", "the fox"), ("3", "What animal?", "fox"), ("3", "Which number?", "3")]
    assert len(rows) == 11  # nothing else: the clips' ASR rows come from the source listed without annotations
    first = next(row for row in rows if row["task"] == "sqa" and row["transcript"].endswith("3"))
    assert first["speaker"] == SPEAKERS[3] and first["audio_source"].endswith(".opus")  # the clip's columns kept


@pytest.mark.parametrize(
    "case, options, message",
    [
        ("missing file", {"translations": "nowhere.jsonl"},
         r"python -m synthesis.translation build --source '\{\"path\": \".*\", \"text_column\": \"text\", \"text_case\": \"sentence\"\}'"),
        ("other texts", {"questions": "questions.jsonl", "text_case": "as_is"}, "no transcript has an entry"),
        ("not a cache", {"translations": "broken.jsonl"}, "broken.jsonl, line 1: not a translations row"),
    ],
)
def test_bad_annotation_files_name_the_build_command(audiofolder, annotations, case, options, message):
    (annotations / "broken.jsonl").write_text("{\"de\": \"no text key\"}\n")
    options = {key: str(annotations / value) if key in ("translations", "questions") else value for key, value in options.items()}
    with pytest.raises(DataError, match=message):
        read_rows({"path": str(audiofolder), "text_column": "text", "text_case": "sentence", **options})


def test_joint_stage_trains_on_real_clip_st_rows_with_their_mt_twins(audiofolder, annotations, seamless_checkpoint, tmp_path):
    source = json.dumps({"path": str(audiofolder), "text_column": "text", "text_case": "sentence",
                         "translations": str(annotations / "translations.jsonl")})
    trainer = run_stage("joint", seamless_checkpoint, source, tmp_path / "c", "--task_probabilities", "st=1",
                        "--pair_st_with_mt", "true", steps=2)
    tasks = trainer.train_dataset["as_task"]
    assert tasks.count("st") == 8 and tasks.count("mt") == 8
    assert len(losses(trainer)) == 2 and all(np.isfinite(losses(trainer)))


def test_annotation_builds_stop_on_a_bad_source_before_loading_their_llm(audiofolder):
    import subprocess
    import sys

    from conftest import ROOT

    for module in ("synthesis.translation", "synthesis.questions"):
        result = subprocess.run(
            [sys.executable, "-m", module, "build", "--source", json.dumps({"path": str(audiofolder), "text_column": "words"}),
             "--output", "unused.jsonl"], capture_output=True, text=True, cwd=ROOT, timeout=120,
        )
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "no column 'words' for transcript" in result.stderr


def test_annotation_builds_read_a_sources_transcripts_as_training_does(audiofolder):
    from synthesis.text_sources import source_transcripts

    spec = json.dumps({"path": str(audiofolder), "text_column": "text", "text_case": "sentence"})
    assert source_transcripts(spec) == [f"I saw the fox number {i}" for i in range(8)]


# ---------------------------------------------------------------------------------------------------------------
# Augmented copies of a source's clips (the "augment" option), heard as they are batched
# ---------------------------------------------------------------------------------------------------------------


def test_augment_draws_a_seed_for_each_copy_of_its_sources_rows(audiofolder, manifest):
    folder = {"path": str(audiofolder), "text_column": "text", "text_case": "sentence"}
    rows = apply_source_weights(read_manifests([manifest, {**folder, "weight": 2, "augment": 1}]), seed=0)
    seeds = draw_augmentation(rows, seed=0)["augment_seed"]
    from_folder = [seed for seed, audio in zip(seeds, rows["audio_source"]) if audio and audio.endswith(".opus")]
    assert len(from_folder) == 16 and min(from_folder) >= 0 and len(set(from_folder)) == 16  # both copies, each its own
    assert set(seeds[: len(seeds) - 16]) == {-1}  # the manifest (augment 0) is heard as it is
    assert draw_augmentation(rows, seed=0)["augment_seed"] == seeds and draw_augmentation(rows, seed=1)["augment_seed"] != seeds
    halves = draw_augmentation(apply_source_weights(read_rows({**folder, "weight": 10, "augment": 0.5})), seed=0)
    assert 25 <= sum(seed >= 0 for seed in halves["augment_seed"]) <= 55  # of 80 copies


def test_an_augmented_copy_is_heard_changed_the_same_way_every_time(audiofolder, seamless_checkpoint):
    from processing_speechllm import SpeechLLMProcessor, load_audio
    from synthesis.augmentation import Augmenter

    processor = SpeechLLMProcessor.from_pretrained(seamless_checkpoint)
    row = read_rows({"path": str(audiofolder), "text_column": "text", "text_case": "sentence"})[0]
    example = {**row, "as_task": "asr", "augment_seed": 4}
    augmentation = AudioAugmentation(processor)
    heard = augmentation(example)["audio_source"]
    clean = load_audio(row["audio_source"], None, 16000)
    expected, applied = Augmenter()(clean, 4)  # speed, noise, telephone band, gain
    assert applied and heard["sampling_rate"] == 16000 and np.array_equal(heard["array"], expected)
    assert np.array_equal(augmentation(example)["audio_source"]["array"], expected)  # the next epoch hears the same
    assert not (len(expected) == len(clean) and np.allclose(expected, clean))
    for unchanged in ({**example, "augment_seed": -1}, {**example, "as_task": "mt"}, {**example, "transcript": "word " * 400}):
        assert augmentation(unchanged) is unchanged  # not drawn; a text task; a copy its transcript would outrun
    collator = InstructionCollator(processor)
    mixed = collator([example, {**example, "augment_seed": -1}])
    plain = collator([{**example, "augment_seed": -1}, {**example, "augment_seed": -1}])
    frames = int(plain["input_features_mask"][1].sum())  # the batch pads to the (sped-down) augmented copy
    assert torch.equal(mixed["input_features"][1][:frames], plain["input_features"][1][:frames])
    assert int(mixed["input_features_mask"][0].sum()) > frames  # speed 0.921: the copy is longer


def test_augment_is_refused_where_it_would_be_ignored(audiofolder, manifest, seamless_checkpoint, tmp_path):
    from evaluation.run import evaluation_rows

    source = json.dumps({"path": str(audiofolder), "text_column": "text", "augment": 0.5})
    with pytest.raises(DataError, match="augment is a training option; evaluation scores the recordings as they are"):
        evaluation_rows(source, processor=None, limit=None)
    with pytest.raises(DataError, match="augment is not applied in stage A"):
        run_stage("mapper", seamless_checkpoint, source, tmp_path / "a", steps=1)


def test_joint_stage_trains_on_augmented_copies(audiofolder, manifest, seamless_checkpoint, tmp_path):
    source = json.dumps({"path": str(audiofolder), "text_column": "text", "text_case": "sentence", "augment": 1})
    trainer = run_stage("joint", seamless_checkpoint, manifest, tmp_path / "c", "--train_file", manifest, source,
                        "--task_probabilities", "asr=0.5,st=0.3,sqa=0.2", steps=3)
    seeds = [seed for seed, audio in zip(trainer.train_dataset["augment_seed"], trainer.train_dataset["audio_source"])
             if audio and audio.endswith(".opus")]
    assert len(seeds) == 8 and min(seeds) >= 0
    assert len(losses(trainer)) == 3 and all(np.isfinite(losses(trainer)))
