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
        {"id": "q", "audio": arctic, "transcript": text, "task": "sqa", "question": "Which degree?", "answer": "superlative"},
        {"id": "t", "audio": arctic, "transcript": text, "task": "st", "tgt_lang": "zh", "translation": "你总是想看到最高级。"},
        {"id": "bad", "audio": "missing.wav", "transcript": text, "task": "asr"},
    ]
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    results = evaluate_model(tiny_checkpoint, str(manifest), str(tmp_path / "out"), max_new_tokens=5)
    assert results["rows"] == 3 and set(results["systems"]["speechllm"]["scores"]) == {"asr/en", "sqa/en", "st/zh"}
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [p["id"] for p in written["predictions"]] == ["a", "q", "t"]
    assert written["systems"]["speechllm"]["rtf"] > 0
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| ASR | en | WER ↓ |" in table and "| ST | zh | BLEU ↑ |" in table and "COMET skipped" in table
    assert (tmp_path / "out" / "results.png").stat().st_size > 5000
