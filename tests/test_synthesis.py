"""fakACL-style synthesis: segmentation, questions, held-out talks and voices, determinism, resuming."""

import collections
import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile

from synthesis.build_dataset import build, plan, questions_for
from synthesis.talks import chunk_talk, is_held_out, read_talks
from synthesis.jsonl import write_atomically
from synthesis.speak import Speaker, Voice, all_voices, split_voices
from synthesis.topics import ANGLES, SUBFIELDS
from synthesis.write_talks import clean_sentences, talk_requests

RAW = (
    "Hello everyone and welcome! Here's your rewritten introduction: Today we present a new method for speech translation of lectures. "
    "Our model listens to the talk and writes the translation directly; it needs no transcript. "
    "#NLP #Speech **We tested it on three languages.** The results improved by four points (see table 2)."
)


def talks_file(tmp_path, count=24):
    topics = ["speech translation", "machine translation", "question answering"]
    talks = [{"id": f"talk-{i}", "topic": topics[i % 3], "angle": "x", "raw": RAW.replace("lectures", f"lectures {i}")} for i in range(count)]
    path = tmp_path / "talks.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in talks))
    return str(path), talks


def chunks_of(talks):
    return [chunk for talk in talks for chunk in chunk_talk(talk)]


def genre_texts(talks):
    """Texts as synthesis.genres.corpus() gives them: the talks' chunks and two texts of other genres."""
    texts = [{**chunk, "genre": "talk", "group": chunk["talk"]} for chunk in chunks_of(talks)]
    others = ["Uh, I think, I think the bus is late again.", "Turn off the lights in the kitchen."]
    return texts + [{"id": f"other-{i}", "genre": genre, "topic": "the bus", "text": text, "group": text}
                    for i, (genre, text) in enumerate(zip(("conversation", "command"), others))]


def test_sentences_are_cleaned_and_greetings_dropped():
    assert clean_sentences(RAW) == [
        "Today we present a new method for speech translation of lectures.",
        "Our model listens to the talk and writes the translation directly.",
        "It needs no transcript.",
        "We tested it on three languages.",
        "The results improved by four points.",
    ]


def test_talk_requests_cover_every_angle_and_refuse_more_than_there_are():
    requests = talk_requests(len(ANGLES))
    assert len(requests) == len(SUBFIELDS) * len(ANGLES) == len({r["id"] for r in requests})
    # A repeated angle would make the LLM write the same talk twice under two ids.
    assert len({r["angle"] for r in requests}) == len(requests)
    assert requests[1] == {"id": "machine-translation-1", "topic": "machine translation", "angle": "a new dataset for machine translation"}
    with pytest.raises(ValueError, match=f"between 1 and {len(ANGLES)}"):
        talk_requests(len(ANGLES) + 1)


def test_chunks_stay_short_and_questions_are_extractive():
    import random

    chunks = chunk_talk({"id": "t", "topic": "speech translation", "raw": RAW})
    assert [len(c["text"].split()) <= 30 for c in chunks] == [True] * len(chunks) and len(chunks) >= 2
    for chunk in chunks:
        for pair in questions_for(chunk, random.Random(0)):
            assert pair["answer"].lower() in chunk["text"].lower()


def test_held_out_split_has_unseen_talks_and_unseen_voices(tmp_path):
    path, talks = talks_file(tmp_path, count=60)

    clips = plan(chunks_of(read_talks(path)), seed=0, held_out_fraction=0.2, limit=None)
    train = [c for c in clips if c["split"] == "train"]
    test = [c for c in clips if c["split"] == "test"]
    assert train and test
    assert not {c["talk"] for c in train} & {c["talk"] for c in test}
    assert not {c["voice"] for c in train} & {c["voice"] for c in test}
    train_voices, test_voices = split_voices(all_voices())
    assert {c["voice"] for c in test} <= set(test_voices) and len({c["voice"].engine for c in train}) == 2


def test_two_builds_writing_one_file_at_once_both_finish(tmp_path, monkeypatch):
    """Two builds of one folder (one --from_the_end) may write the same file at the same moment: the second writes
    while the first is still writing. Each keeps its own temporary file, so neither renames the other's away."""
    target = tmp_path / "build_info.json"
    pids = iter([101, 202])
    monkeypatch.setattr("os.getpid", lambda: next(pids))

    def first_writer(temporary):
        Path(temporary).write_text("first")
        write_atomically(str(target), lambda other: Path(other).write_text("second"))  # the other build, meanwhile

    write_atomically(str(target), first_writer)
    assert target.read_text() == "first"  # the later rename wins, as with one writer after another
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build_info.json"]


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    def failing(temporary):
        Path(temporary).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(str(tmp_path / "sub" / "clip.wav"), failing)
    assert list((tmp_path / "sub").iterdir()) == []


def test_both_engines_speak_16k_audio():
    speaker = Speaker()
    for voice in (Voice("piper", "joe", 1.0), Voice("espeak", "en-gb-scotland", 160, 40)):
        samples = speaker.speak("We present a new method.", voice)
        assert samples.dtype.name == "float32" and 0.8 < len(samples) / 16000 < 4.0 and abs(samples).max() > 0.05


def test_espeak_speaks_a_text_that_starts_like_an_option():
    # As a command-line argument, "-20% off..." is read by espeak-ng as an option and no audio comes out.
    samples = Speaker().speak("-20% off your next purchase.", Voice("espeak", "en-us+m3", 185, 75))
    assert 1.0 < len(samples) / 16000 < 5.0 and abs(samples).max() > 0.05


def digest(directory):
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(directory.rglob("*.wav"))}


def test_synthesis_is_deterministic_and_resumes(tmp_path, capsys):
    path, _ = talks_file(tmp_path, count=4)
    build(str(tmp_path / "a"), path, seed=3, limit=8)
    build(str(tmp_path / "b"), path, seed=3, limit=8)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") and len(digest(tmp_path / "a")) == 8
    assert (tmp_path / "a" / "train.jsonl").read_text() == (tmp_path / "b" / "train.jsonl").read_text()
    victim = sorted((tmp_path / "a").rglob("*.wav"))[2]
    victim.unlink()
    capsys.readouterr()
    build(str(tmp_path / "a"), path, seed=3, limit=8)
    assert "7 of 8 clips already spoken, 1 to speak" in capsys.readouterr().out
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_a_build_from_the_end_shares_the_work_with_one_running_forwards(tmp_path, capsys):
    path, _ = talks_file(tmp_path, count=4)
    build(str(tmp_path / "a"), path, seed=3, limit=8)
    reference = digest(tmp_path / "a")
    spoken = sorted((tmp_path / "a").rglob("*.wav"), key=lambda p: p.stat().st_mtime)
    for later in spoken[3:]:  # a forward build was stopped after its first 3 clips ...
        later.unlink()
    (tmp_path / "a" / "train.jsonl").unlink()
    capsys.readouterr()
    build(str(tmp_path / "a"), path, seed=3, limit=8, from_the_end=True)  # ... and the other end takes the rest
    assert "3 of 8 clips already spoken, 5 to speak" in capsys.readouterr().out
    assert digest(tmp_path / "a") == reference and (tmp_path / "a" / "train.jsonl").exists()


def test_synthesised_data_feeds_train_py(tmp_path, seamless_checkpoint):
    from training.data import keep_usable_rows, read_rows
    from processing_speechllm import SpeechLLMProcessor

    path, _ = talks_file(tmp_path, count=3)
    build(str(tmp_path / "data"), path, seed=0, limit=4)
    processor = SpeechLLMProcessor.from_pretrained(seamless_checkpoint)
    written = len((tmp_path / "data" / "train.jsonl").read_text().splitlines())
    for source in (tmp_path / "data" / "train.jsonl", tmp_path / "data" / "train_dataset"):
        rows = keep_usable_rows(read_rows(str(source)), lambda row: (row["task"],), processor, False, "synth")
        assert len(rows) == written and set(rows["task"]) == {"asr", "sqa"}
        info = soundfile.info(rows[0]["audio_source"])
        assert info.samplerate == 16000 and info.duration > 1.0


def test_v2_holds_out_whole_speakers_augments_training_clips_and_adds_translations_and_questions(tmp_path, seamless_checkpoint):
    from processing_speechllm import SpeechLLMProcessor
    from synthesis.speak import VOICE_SETS
    from training.data import keep_usable_rows, read_rows

    path, talks = talks_file(tmp_path, count=12)
    texts = genre_texts(talks)
    clips = plan(texts, seed=0, held_out_fraction=0.2, limit=None, version="v2")
    train_voices, test_voices = VOICE_SETS["v2"]()
    assert {c["voice"] for c in clips if c["split"] == "test"} <= set(test_voices)
    assert {c["voice"] for c in clips if c["split"] == "train"} <= set(train_voices)
    assert not {v.name for v in train_voices} & {v.name for v in test_voices if v.engine == "kokoro"}  # whole speakers

    training_talk = [text for text in texts if text["genre"] == "talk" and not is_held_out(text["group"], 0.2)]
    chosen = [text for text in texts if text["genre"] != "talk"] + training_talk[:2]
    text = training_talk[0]["text"]
    cache = tmp_path / "translations.jsonl"
    cache.write_text(json.dumps({"text": text, "de": "Heute stellen wir eine neue Methode vor.", "zh": "今天我们提出一种新方法。"}) + "\n")
    asked = tmp_path / "questions.jsonl"
    asked.write_text(json.dumps({"text": chosen[0]["text"], "questions": [{"question": "What is late?", "answer": "the bus"}], "dropped": []}) + "\n")
    out = tmp_path / "v2"
    built = build(str(out), seed=0, held_out_fraction=0.2, version="v2", augment_fraction=1.0, translations_path=str(cache),
                  unanswerable_fraction=1.0, texts=chosen, questions_path=str(asked))
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert all(row["audio"].endswith(".aug.wav") for row in rows)  # every training clip augmented at fraction 1
    assert all((out / row["audio"]).exists() and isinstance(row["augmentation"], list) for row in rows)
    assert {row["genre"] for row in rows} == {"talk", "conversation", "command"}
    st = [row for row in rows if row["task"] == "st"]
    assert {(row["tgt_lang"], row["transcript"]) for row in st} == {("de", text), ("zh", text)}
    twins = [json.loads(line) for line in (out / "train_text.jsonl").read_text().splitlines()]
    assert {row["task"] for row in twins} == {"mt", "qa"} and all(row["audio"] is None for row in twins)
    processor = SpeechLLMProcessor.from_pretrained(seamless_checkpoint)
    for name in ("train.jsonl", "train_text.jsonl"):
        usable = keep_usable_rows(read_rows(str(out / name)), lambda row: (row["task"],), processor, False, name)
        assert len(usable) == len(rows if name == "train.jsonl" else twins)
    assert len(built) == 4
    sqa = [row for row in rows if row["task"] == "sqa"]
    generated = [(row["transcript"], row["question"], row["answer"]) for row in sqa if row["question_type"] == "generated"]
    assert generated == [(chosen[0]["text"], "What is late?", "the bus")]
    assert not [row for row in sqa if row["genre"] != "talk" and row["question"] == "What is the topic of this talk?"]
    unanswerable = [row for row in sqa if row["question_type"] == "unanswerable"]
    assert len(unanswerable) == len([row for row in rows if row["task"] == "asr"])  # one per clip at fraction 1
    assert all(row["answer"] == "The speaker does not say." for row in unanswerable)
    group_of_question = {row["question"]: row["group"] for row in sqa if row["question_type"] != "unanswerable"}
    for row in unanswerable:  # asked of another group's text, never a topic question
        assert row["question"] != "What is the topic of this talk?"
        assert group_of_question.get(row["question"], "elsewhere") != row["group"]
    from synthesis.data_card import speech_section

    card = speech_section(str(out))
    clips = [row for row in rows if row["task"] == "asr"]
    assert f"### train: {len(clips)} clips" in card and f"{len(clips)} augmented" in card
    for family in {row["voice"].split(":")[0] for row in clips}:
        assert f"| {family} | " in card
    assert "| generated | 1 |" in card and f"| unanswerable | {len(clips)} |" in card and "| st de | 1 |" in card
    with pytest.raises(ValueError, match="v2 options: add --version v2"):
        build(str(tmp_path / "v1"), path, limit=1, augment_fraction=0.5)

    # keep_clean: the same build's manifests list each augmented clip's clean original as well (nothing is spoken again)
    build(str(out), seed=0, held_out_fraction=0.2, version="v2", augment_fraction=1.0, translations_path=str(cache),
          unanswerable_fraction=1.0, texts=chosen, questions_path=str(asked), keep_clean=True)
    both = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(both) == 2 * len(rows)
    copies = [row for row in both if row["audio"].endswith(".aug.wav")]
    assert all("-aug" in row["id"] for row in copies)
    assert [{**row, "id": row["id"].replace("-aug", "", 1)} for row in copies] == rows  # as before, under new ids
    originals = [row for row in both if not row["audio"].endswith(".aug.wav")]
    assert [row["id"] for row in originals] == [row["id"] for row in rows]
    assert all(row["augmentation"] == [] and (out / row["audio"]).exists() for row in originals)


def test_v2_voices_are_drawn_by_family_share():
    from synthesis.speak import FAMILY_SHARES, VOICE_SETS, pick_voices

    train_voices, _ = VOICE_SETS["v2"]()
    rng = random.Random(0)
    drawn = [pick_voices(rng, train_voices, 2, FAMILY_SHARES["v2"]) for _ in range(2000)]
    assert all(len(set(pair)) == 2 for pair in drawn)
    first = collections.Counter(pair[0].engine for pair in drawn)
    for family, share in FAMILY_SHARES["v2"].items():
        assert abs(first[family] / 2000 - share) < 0.03, (family, first)
    again = random.Random(0)
    assert [pick_voices(again, train_voices, 2, FAMILY_SHARES["v2"]) for _ in range(2000)] == drawn


def test_family_shares_choose_which_voices_speak_a_v2_build(tmp_path):
    """--family_shares: the fast voices only (no Kokoro), the texts and splits unchanged; shares no split can use are
    refused. --training_only: an extra build of training clips only."""
    import subprocess
    import sys

    _, talks = talks_file(tmp_path, count=12)
    texts = genre_texts(talks)
    default = plan(texts, seed=0, held_out_fraction=0.2, limit=None, version="v2")
    fast = plan(texts, seed=0, held_out_fraction=0.2, limit=None, version="v2", family_shares={"piper": 0.3, "espeak": 0.7})
    assert [(c["id"], c["text"], c["split"]) for c in fast] == [(c["id"], c["text"], c["split"]) for c in default]
    assert "kokoro" in {c["voice"].engine for c in default}
    assert {c["voice"].engine for c in fast if c["split"] == "train"} == {"piper", "espeak"}
    assert {c["voice"].engine for c in fast if c["split"] == "test"} == {"piper"}  # the held-out voices have no espeak-ng

    # an extra training build: the training split only, spoken by the fast voices (a few seconds for 4 clips)
    build(str(tmp_path / "extra"), version="v2", texts=texts, limit=4, family_shares={"espeak": 1.0, "piper": 0.1},
          training_only=True)
    rows = [json.loads(line) for line in (tmp_path / "extra" / "train.jsonl").read_text().splitlines()]
    training = [c for c in fast if c["split"] == "train"]
    spoken = {row["transcript"] for row in rows}
    assert len(spoken) == 4 and spoken <= {c["text"] for c in training}
    assert (tmp_path / "extra" / "test.jsonl").read_text() == ""

    refused = subprocess.run([sys.executable, "-m", "synthesis.build_dataset", "--output_dir", str(tmp_path / "out"),
                              "--version", "v2", "--family_shares", "espeak=1"], capture_output=True, text=True)
    assert refused.returncode == 2 and "held-out voices are of the families ['kokoro', 'piper']" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "out").exists()
    misspelt = subprocess.run([sys.executable, "-m", "synthesis.build_dataset", "--output_dir", str(tmp_path / "out"),
                               "--version", "v2", "--family_shares", "piper=1,kokro=1"], capture_output=True, text=True)
    assert misspelt.returncode == 2 and "unknown voice families ['kokro']" in misspelt.stderr


def test_a_speech_cache_restores_a_build_on_another_machine_without_speaking(tmp_path, monkeypatch, capsys):
    path, _ = talks_file(tmp_path, count=4)
    cache = str(tmp_path / "spoken")
    build(str(tmp_path / "first"), path, seed=3, limit=6, speech_cache=cache)
    kept = sorted((tmp_path / "spoken").rglob("*.opus"))
    assert len(kept) == 6
    wavs = sorted((tmp_path / "first").rglob("*.wav"))
    assert sum(p.stat().st_size for p in kept) < sum(p.stat().st_size for p in wavs) / 8  # ~24 kbit/s against 256

    def must_not_speak(self, text, voice):
        raise AssertionError(f"spoke {text!r} again although the cache keeps it")

    monkeypatch.setattr(Speaker, "speak", must_not_speak)
    build(str(tmp_path / "second"), path, seed=3, limit=6, speech_cache=cache)
    assert digest(tmp_path / "second") == digest(tmp_path / "first")  # the speaking machine wrote what the cache gives back
    assert (tmp_path / "second" / "train.jsonl").read_text() == (tmp_path / "first" / "train.jsonl").read_text()


def test_speech_kept_in_the_cache_stays_intelligible_to_whisper(tmp_path):
    from conversion.parts import whisper_tiny_en
    from evaluation.run import WhisperTranscriber, load_metric
    from synthesis.speech_cache import SpeechCache

    sentences = ["The model listens to the talk and writes the translation directly.",
                 "We tested it on three languages and the results improved by four points."]
    speaker, cache = Speaker(), SpeechCache(str(tmp_path), 16000)
    voice = Voice.from_key("kokoro:kokoro-kumo:1.0:50")
    spoken = [speaker.speak(text, voice) for text in sentences]
    kept = [cache.store(samples, text, voice.key) for samples, text in zip(spoken, sentences)]
    assert all(k.shape == s.shape for k, s in zip(kept, spoken))
    assert all((cache.load(text, voice.key) == k).all() for text, k in zip(sentences, kept))
    assert cache.load(sentences[0], "another:voice") is None
    transcriber, wer = WhisperTranscriber(whisper_tiny_en()), load_metric("normalised_wer")
    original = wer.compute(predictions=transcriber(spoken), references=sentences)["wer"]
    restored = wer.compute(predictions=transcriber(kept), references=sentences)["wer"]
    assert restored <= original + 0.05, (original, restored)


# ---------------------------------------------------------------------------------------------------------------
# SeamlessM4T-v2's own voice (the 2026 paper's), from a tiny random checkpoint
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seamless_tts(tmp_path_factory):
    from scripts.make_tiny_checkpoint import build_tiny_seamless_tts

    model, processor = build_tiny_seamless_tts()
    path = str(tmp_path_factory.mktemp("seamless-tts"))
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_seamless_tts_speaks_16k_audio_in_each_vocoder_speaker(seamless_tts):
    from synthesis.seamless_tts import SeamlessTTSEngine
    from synthesis.speak import Speaker, Voice

    engine = SeamlessTTSEngine(seamless_tts)
    samples, rate = engine.speak("the quick brown fox", Voice("seamless", "1", 1.0))
    assert rate == 16000 and samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) > 0 and len(samples) % 320 == 0  # whole units: the vocoder upsamples each unit 5·4·4·2·2 times
    assert np.all(np.isfinite(samples)) and samples.std() > 0
    other, _ = engine.speak("the quick brown fox", Voice("seamless", "2", 1.0))
    assert not np.array_equal(samples[: len(other)], other[: len(samples)])  # the speaker embedding changes the sound
    # through the Speaker, as a build speaks: the checkpoint chosen by the engine's options
    spoken = Speaker({"seamless": {"model_name_or_path": seamless_tts}}).speak("the quick brown fox", Voice("seamless", "1", 1.0))
    assert np.array_equal(spoken, samples)
    with pytest.raises(ValueError, match="speakers 0..3"):
        engine.speak("the fox", Voice("seamless", "7", 1.0))


def test_a_v2_seamless_build_speaks_with_the_checkpoints_speakers_and_holds_some_out(tmp_path, seamless_tts):
    from synthesis.speak import split_seamless_voices

    options = {"seamless": {"model_name_or_path": seamless_tts}}
    train_voices, test_voices = split_seamless_voices(options)
    assert sorted(int(v.name) for v in train_voices + test_voices) == [0, 1, 2, 3] and test_voices and train_voices
    path, talks = talks_file(tmp_path, count=6)
    out = tmp_path / "seamless"
    build(str(out), seed=0, held_out_fraction=0.2, version="v2-seamless", texts=genre_texts(talks), limit=4,
          engine_options=options)
    rows = [json.loads(line) for name in ("train.jsonl", "test.jsonl") if (out / name).exists()
            for line in (out / name).read_text().splitlines()]
    assert rows and all(row["voice"].startswith("seamless:") for row in rows)
    for row in rows:
        info = soundfile.info(out / row["audio"])
        assert info.samplerate == 16000 and info.frames > 0
