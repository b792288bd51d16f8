"""The local metric modules give known values; the evaluation command writes its JSON, table and plot."""

import json
import os

import evaluate
import pytest
from conftest import ROOT

METRICS = os.path.join(ROOT, "evaluation", "metrics")


def metric(name):
    return evaluate.load(os.path.join(METRICS, name))


def test_wer_normalises_like_whisper_before_counting():
    wer = metric("normalised_wer")
    assert wer.compute(predictions=["The cat sat."], references=["the cat sat on"])["wer"] == pytest.approx(0.25)
    assert wer.compute(predictions=["Mr. Smith paid twenty dollars!"], references=["mister smith paid $20"])["wer"] == 0.0
    two = wer.compute(predictions=["a b c", "x y"], references=["a b d", "x y z w"])
    assert two["wer"] == pytest.approx(3 / 7) and two["reference_words"] == 7  # corpus-level, not averaged


def test_bleu_chrf_with_the_chinese_tokeniser():
    scores = metric("bleu_chrf")
    same = "the quick brown fox jumps over the lazy dog"
    assert scores.compute(predictions=[same], references=[same], language="de")["bleu"] == pytest.approx(100.0)
    zh = scores.compute(predictions=["我喜欢这只猫和那只狗"], references=["我喜欢这只猫和那只狗"], language="zh")
    assert zh["bleu"] == pytest.approx(100.0) and zh["tokenize"] == "zh"
    # without the zh tokeniser the whole sentence is one word and one changed character zeroes BLEU
    changed = scores.compute(predictions=["我喜欢这只猫和那只猪"], references=["我喜欢这只猫和那只狗"], language="zh")
    assert 50 < changed["bleu"] < 100 and 50 < changed["chrf"] < 100
    as_one_word = scores.compute(predictions=["我喜欢这只猫和那只猪"], references=["我喜欢这只猫和那只狗"], language="de")
    assert as_one_word["bleu"] == 0.0


def test_sqa_accuracy_accepts_exact_or_contained_answers():
    accuracy = metric("sqa_accuracy")
    result = accuracy.compute(predictions=["The answer is Paris.", "London", "parisian"], references=["paris", "Berlin", "paris"])
    assert result == {"accuracy": pytest.approx(1 / 3), "correct": 1, "total": 3}


def test_evaluation_command_writes_json_table_and_plot(tiny_checkpoint, tmp_path):
    from evaluation.run import evaluate_model

    arctic = os.path.join(ROOT, "assets", "arctic_a0007.wav")
    text = "And you always want to see it in the superlative degree."
    rows = [
        {"id": "a", "audio": arctic, "transcript": text, "task": "asr"},
        {"id": "q", "audio": arctic, "transcript": text, "task": "sqa", "question": "Which degree?", "answer": "superlative",
         "question_type": "extractive"},
        {"id": "u", "audio": arctic, "transcript": text, "task": "sqa", "question": "Who won?", "answer": "The speaker does not say.",
         "question_type": "unanswerable"},
        {"id": "t", "audio": arctic, "transcript": text, "task": "st", "tgt_lang": "zh", "translation": "你总是想看到最高级。"},
        {"id": "bad", "audio": "missing.wav", "transcript": text, "task": "asr"},
    ]
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    results = evaluate_model(tiny_checkpoint, str(manifest), str(tmp_path / "out"), max_new_tokens=5, text_ceiling=True,
                             rtf_batch_sizes=(1, 2), translate_to=("de", "zh"))
    scores = results["systems"]["speechllm"]["scores"]
    assert results["rows"] == 4
    assert set(scores) == {"asr/en", "sqa/all", "sqa/extractive", "sqa/unanswerable", "st/zh"}
    assert scores["sqa/all"]["total"] == 2 and scores["sqa/unanswerable"]["total"] == 1
    # the text-only ceiling reads the transcripts of the ST and SQA rows, not the ASR one
    assert set(results["systems"]["text-only"]["scores"]) == {"sqa/all", "sqa/extractive", "sqa/unanswerable", "st/zh"}
    assert 0.0 <= scores["st/zh"]["target_language"] <= 1.0
    assert set(results["rtf_by_batch_size"]) == {"1", "2"} and all(f > 0 for f in results["rtf_by_batch_size"].values())
    # the ASR clip also translated into each language, scored by language share alone (no reference needed)
    assert set(results["adherence_without_reference"]) == {"de", "zh"}
    assert {"speechllm→de", "speechllm→zh"} <= set(results["predictions"][0])
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [p["id"] for p in written["predictions"]] == ["a", "q", "u", "t"]
    assert "text-only" in written["predictions"][3] and "text-only" not in written["predictions"][0]
    assert written["systems"]["speechllm"]["rtf"] > 0
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| ASR | en | WER ↓ |" in table and "| ST | zh | BLEU ↑ |" in table and "COMET skipped" in table
    assert "| ST | zh | % in target language ↑ |" in table and "| ASR | batch 1 | real-time factor ↓ |" in table
    assert (tmp_path / "out" / "results.png").stat().st_size > 5000
    assert "| ST | zh (ASR clips, no reference) | % in target language ↑ |" in table


def test_several_manifests_are_pooled_with_ids_prefixed_by_their_file(tiny_checkpoint, tmp_path):
    from evaluation.run import evaluate_model

    arctic = os.path.join(ROOT, "assets", "arctic_a0007.wav")
    for name in ("one", "two"):
        row = {"id": "a", "audio": arctic, "transcript": "And you always want to see it in the superlative degree.", "task": "asr"}
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(row))
    results = evaluate_model(tiny_checkpoint, [str(tmp_path / "one.jsonl"), str(tmp_path / "two.jsonl")], str(tmp_path / "out"),
                             max_new_tokens=3)
    assert [p["id"] for p in results["predictions"]] == ["one/a", "two/a"]
    assert results["rows"] == 2


def test_a_per_task_sample_is_balanced_seeded_and_in_manifest_order():
    from evaluation.run import sample_per_task

    rows = [{"id": f"{task}{i}", "task": task} for task, count in (("asr", 6), ("st", 3), ("sqa", 1)) for i in range(count)]
    rows = rows[::2] + rows[1::2]  # tasks interleaved, as in a real manifest
    sample = sample_per_task(rows, 2)
    assert sorted(row["task"] for row in sample) == ["asr", "asr", "sqa", "st", "st"]  # the lone SQA row is kept
    assert sample == [row for row in rows if row in sample]  # manifest order
    assert sample == sample_per_task(rows, 2)  # the same rows for every model compared
    assert sample_per_task(rows, 100) == rows


def test_language_adherence_tells_the_three_target_languages_apart():
    from evaluation.language_id import adherence, identify

    texts = ["Das ist ein kleines Haus am Rande der Stadt.", "Questa è una piccola casa ai margini della città.",
             "这是城市边缘的一座小房子。", "This is a small house at the edge of town.", ""]
    assert identify(texts) == ["de", "it", "zh", "en", ""]
    assert adherence(texts, "de") == pytest.approx(1 / 5)


def test_ctc_best_path_merges_repeats_and_drops_blanks_within_each_length():
    import torch
    from evaluation.probe_mapper import ctc_best_path

    frames = torch.tensor([[5, 5, 0, 5, 3, 3, 0, 7], [2, 0, 2, 2, 0, 0, 9, 9]])
    logits = torch.nn.functional.one_hot(frames, 10).float()
    assert ctc_best_path(logits, torch.tensor([7, 8]), blank_id=0) == [[5, 5, 3], [2, 2, 9]]


def test_nearest_embedding_reading_finds_scaled_rows_and_skips_padding():
    import torch
    from evaluation.probe_mapper import nearest_embedding_ids

    table = torch.randn(20, 16)
    outputs = torch.stack([3.0 * table[[4, 11, 7, 7]], 0.5 * table[[9, 1, 2, 3]]])
    assert nearest_embedding_ids(outputs, torch.tensor([4, 2]), table, skip_id=7) == [[4, 11], [9, 1]]


def test_mapper_probe_reads_a_clip_the_same_alone_and_in_a_padded_batch(tmp_path):
    import soundfile
    from evaluation.probe_mapper import probe
    from scripts.make_tiny_checkpoint import build_tiny
    from modeling_speechllm import build_ctc_head

    model, processor = build_tiny("whisper", seed=0)
    model.config.stage_a_loss = "l1_cosine_contrastive_ctc"  # the 2026 loss: the checkpoint gets a CTC head
    model.ctc_head = build_ctc_head(model.config)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    arctic = os.path.join(ROOT, "assets", "arctic_a0007.wav")
    samples, rate = soundfile.read(arctic)
    short = str(tmp_path / "short.wav")
    soundfile.write(short, samples[: int(1.5 * rate)], rate)  # shorter than its batch mate: padded in the batch
    text = "And you always want to see it in the superlative degree."
    rows = [
        {"id": "short", "audio": short, "transcript": "And you always", "task": "asr"},
        {"id": "long", "audio": arctic, "transcript": text, "task": "asr"},
        {"id": "q", "audio": arctic, "transcript": text, "task": "sqa", "question": "Which degree?", "answer": "superlative"},
    ]
    manifest = tmp_path / "probe.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    alone = probe(str(tmp_path / "model"), str(manifest), batch_size=1)
    batched = probe(str(tmp_path / "model"), str(manifest), batch_size=2)
    assert alone["rows"] == 2 and set(alone["wer"]) == {"ctc", "nearest_embedding"}
    assert alone["predictions"] == batched["predictions"]
    assert all(p["nearest_embedding"] for p in alone["predictions"])  # a random mapper still reads as some tokens


def test_llm_comparison_asks_an_instruct_model_by_chat_and_a_base_model_by_completion(part_cache):
    from transformers import AutoTokenizer

    from conversion import parts
    from evaluation.compare_llms import CANDIDATES, Candidate, prompt

    assert set(CANDIDATES) <= set(parts.PARTS)  # every candidate is a part that converts offline
    tokenizer = AutoTokenizer.from_pretrained(parts.part("qwen2.5-coder-0.5b-instruct"))
    chat = prompt(tokenizer, Candidate(chat=True), "The cat sleeps.", "it")
    assert chat.count("<|im_start|>user") == 1 and chat.endswith("<|im_start|>assistant\n")
    assert "into Italian" in chat and "The cat sleeps." in chat
    assert prompt(tokenizer, Candidate(chat=False), "The cat sleeps.", "zh") == (
        "Translate English into Chinese.\nEnglish: The cat sleeps.\nChinese:"
    )


def test_audio_reliance_scores_each_transcript_with_its_own_and_another_clips_audio(tiny_whisper, manifest):
    import torch

    from evaluation.audio_reliance import audio_reliance
    from training.data import InstructionCollator, usable_rows_of_tasks

    model, processor = tiny_whisper
    model.eval()
    rows = usable_rows_of_tasks(manifest, ("asr", "st", "sqa"), processor, "reliance")[:3]  # three clips, lengths differ
    result = audio_reliance(model, processor, rows, batch_size=2)
    # each clip's own-audio loss is the model's own CE on that example alone (batching and padding change nothing)
    for row, clip in zip(rows, result["per_clip"]):
        batch = InstructionCollator(processor)([{**row, "as_task": "asr"}])
        batch.pop("transcript_ids")
        with torch.no_grad():
            assert clip["own"] == pytest.approx(model(**batch).ce_loss.item(), rel=1e-4)
    # "other" is the same transcript with the next clip's audio (rotated): its own loss in the rotated sample
    rotated = audio_reliance(model, processor, [{**row, "audio_source": rows[(i + 1) % 3]["audio_source"]}
                                                for i, row in enumerate(rows)], batch_size=3)
    assert [c["own"] for c in rotated["per_clip"]] == pytest.approx([c["other"] for c in result["per_clip"]], rel=1e-4)
    assert result["gap"] == pytest.approx(result["loss_other_audio"] - result["loss_own_audio"])
    same_audio = audio_reliance(model, processor, [{**row, "audio_source": rows[0]["audio_source"]} for row in rows])
    assert same_audio["gap"] == pytest.approx(0.0, abs=1e-6) and same_audio["share_better_with_own_audio"] == 0.0
    with pytest.raises(ValueError, match="at least two"):
        audio_reliance(model, processor, rows[:1])


def test_an_evaluation_killed_part_way_resumes_with_the_same_predictions(tiny_checkpoint, tmp_path):
    from evaluation.run import evaluate_model

    arctic = os.path.join(ROOT, "assets", "arctic_a0007.wav")
    rows = [{"id": f"c{i}", "audio": arctic, "transcript": "And you always want to see it.", "task": "asr"} for i in range(5)]
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    whole = evaluate_model(tiny_checkpoint, str(manifest), str(tmp_path / "whole"), batch_size=2, max_new_tokens=4)
    log = tmp_path / "whole" / "predictions.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) == 1 + 3  # the settings, then three batches of at most two clips
    # as if killed while writing the second batch: the first is kept, the half line dropped, the rest made again
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "predictions.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    resumed = evaluate_model(tiny_checkpoint, str(manifest), str(killed), batch_size=2, max_new_tokens=4)
    assert [p["speechllm"] for p in resumed["predictions"]] == [p["speechllm"] for p in whole["predictions"]]
    entries = [json.loads(line) for line in (killed / "predictions.jsonl").read_text().splitlines()]
    assert [len(entry["ids"]) for entry in entries[1:]] == [2, 2, 1] and entries[1] == json.loads(lines[1])
    with pytest.raises(ValueError, match="holds predictions made with other settings"):
        evaluate_model(tiny_checkpoint, str(manifest), str(killed), batch_size=2, max_new_tokens=6)


def write_predictions(path, rows):
    path.write_text(json.dumps({"predictions": rows}))
    return str(path)


def test_paired_bootstrap_separates_a_real_gain_from_noise(tmp_path):
    """B reads every clip right where A misses one word of each: B is lower in every resample, and the interval of
    B - A excludes 0; a system against itself differs by exactly 0; SQA rows are not scored."""
    from evaluation.paired_bootstrap import main

    references = [f"the {word} sat on the mat" for word in ("cat", "dog", "hen", "fox", "owl", "ram", "elk", "yak")]
    rows = [{"id": str(i), "task": "asr", "reference": text, "speechllm": text.replace("the ", "a ", 1), "whisper": text}
            for i, text in enumerate(references)]
    rows.append({"id": "q", "task": "sqa", "reference": "cat", "speechllm": "dog"})
    results = write_predictions(tmp_path / "results.json", rows)
    gain = main([f"{results}:speechllm", f"{results}:whisper", "--resamples", "500"])
    assert (gain["clips"], gain["reference_words"]) == (8, 48)
    assert (gain["wer_a"], gain["wer_b"], gain["share_b_lower"]) == (8 / 48, 0.0, 1.0)
    assert gain["difference_interval_95"][1] < 0
    same = main([f"{results}:whisper", f"{results}:whisper"])
    assert same["difference_interval_95"] == [0.0, 0.0] and same["share_b_lower"] == 0.0


def test_paired_bootstrap_refuses_files_of_other_clips_or_systems(tmp_path):
    from evaluation.paired_bootstrap import main

    a = write_predictions(tmp_path / "a.json", [{"id": "1", "reference": "one two", "ctc": "one"}])
    b = write_predictions(tmp_path / "b.json", [{"id": "2", "reference": "three", "ctc": "three"}])
    with pytest.raises(SystemExit, match="share no ASR row id"):
        main([f"{a}:ctc", f"{b}:ctc"])
    with pytest.raises(SystemExit, match="no predictions of 'speechllm'; its systems: ctc"):
        main([f"{a}:speechllm", f"{a}:ctc"])


def test_scores_kept_beside_shipped_weights_reach_the_card_of_every_build(tiny_checkpoint, tmp_path):
    """evaluation.run --keep_in FILE keeps one entry per data (a rerun replaces it, with its decoding); a build of the
    shipped weights puts them in its model card's model-index (a fresh default said "Not evaluated yet")."""
    import shutil

    from huggingface_hub import ModelCard

    from evaluation.run import evaluate_model
    from training.model_card import read_kept_results, record_kept_results

    arctic = os.path.join(ROOT, "assets", "arctic_a0007.wav")
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text(json.dumps({"id": "a", "audio": arctic, "transcript": "And you always want to see it.", "task": "asr"}))
    kept = tmp_path / "results.json"
    for ctc_weight in (0.0, 0.5):
        evaluate_model(tiny_checkpoint, str(manifest), str(tmp_path / f"out{ctc_weight}"), max_new_tokens=4,
                       decoding={"ctc_weight": ctc_weight, "num_beams": 2}, keep_in=str(kept))
    entries = read_kept_results(str(kept))
    assert len(entries) == 1 and entries[0]["decoding"] == {"ctc_weight": 0.5, "num_beams": 2}
    assert "wer" in entries[0]["scores"]["asr/en"]
    build = tmp_path / "build"
    shutil.copytree(tiny_checkpoint, build)
    (build / "README.md").unlink(missing_ok=True)
    record_kept_results(str(build), str(kept))
    results = ModelCard.load(build / "README.md").data.eval_results
    assert [(r.metric_type, r.dataset_name) for r in results] == [("wer", entries[0]["data"])]
    assert results[0].metric_value == round(entries[0]["scores"]["asr/en"]["wer"] * 100, 2)
