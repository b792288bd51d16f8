"""The embedded default: real parts from pip packages + the shipped trained weights, run by the main job."""

import ast
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from scripts.build_default_model import WEIGHTS_DIR, build_default
from conftest import ROOT
from safetensors import safe_open
from safetensors.torch import load_file

from evaluation.arctic import ARCTIC


def test_the_built_default_carries_the_shipped_weights(default_dir):
    shipped = load_file(os.path.join(WEIGHTS_DIR, "weights.safetensors"))
    assert any(".lora_A." in name for name in shipped) and any(name.startswith("multi_modal_projector.") for name in shipped)
    with safe_open(os.path.join(default_dir, "model.safetensors"), framework="pt") as built:
        for name, value in shipped.items():
            assert torch.equal(built.get_tensor(name), value.float()), name
    with open(os.path.join(default_dir, "config.json")) as handle:
        config = json.load(handle)
    with open(os.path.join(WEIGHTS_DIR, "settings.json")) as handle:
        settings = json.load(handle)
    assert config["lora"] == settings["lora"]
    # the CTC head fitted on that mapper, and the decoding the settings choose for transcripts
    head = load_file(os.path.join(WEIGHTS_DIR, "ctc_head.safetensors"))
    assert set(head) == {"ctc_head.projection.weight", "ctc_head.projection.bias", "ctc_head.bias", "ctc_head.blank_embedding"}
    with safe_open(os.path.join(default_dir, "model.safetensors"), framework="pt") as built:
        for name, value in head.items():
            assert torch.equal(built.get_tensor(name), value), name
    assert config["transcribe_ctc_weight"] == settings["config"]["transcribe_ctc_weight"] > 0


def test_the_built_defaults_card_carries_the_scores_kept_for_its_weights(default_dir):
    from huggingface_hub import ModelCard

    from training.model_card import read_kept_results

    kept = read_kept_results(os.path.join(WEIGHTS_DIR, "results.json"))
    card = ModelCard.load(os.path.join(default_dir, "README.md"))
    wers = {r.dataset_name: r.metric_value for r in card.data.eval_results if r.metric_type == "wer"}
    assert wers and wers == {e["data"]: round(e["scores"]["asr/en"]["wer"] * 100, 2) for e in kept if "asr/en" in e["scores"]}
    assert "Not evaluated yet" not in card.text


def test_the_main_job_transcribes_the_real_recording_in_a_fresh_process(default_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"), TRANSFORMERS_VERBOSITY="error")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "demo.py"), "--checkpoint", default_dir],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = re.findall(r"^(transcription|answer to '.*'): (.*)$", result.stdout, re.M)
    answers = {label: ast.literal_eval(value) for label, value in printed}  # demo.py prints each answer's repr
    assert set(answers) == {"transcription", "answer to 'In which degree do you always want to see it?'"}
    translations = re.findall(r"^translation \((de|it|zh)\): (.*)  \[(.*)\]$", result.stdout, re.M)
    assert [language for language, _, _ in translations] == ["de", "it", "zh"]
    from scripts.demo import heard_language

    for language, text, heard in translations:  # the language note is langid's verdict on that very text
        assert heard == heard_language(ast.literal_eval(text), language)
    # The fresh process (the checkpoint's own remote code) decodes exactly what this process decodes.
    from transformers import pipeline

    import pipeline_speechllm  # noqa: F401

    from pipeline_speechllm import native_cpu_dtype

    assert f"({str(native_cpu_dtype()).removeprefix('torch.')})" in result.stdout  # the precision it chose, said
    local = pipeline("speech-instruct", model=default_dir, dtype=native_cpu_dtype())
    assert answers["transcription"] == local(ARCTIC.audio, task="transcribe", max_new_tokens=48)
    assert answers["transcription"].strip()


@pytest.mark.parametrize("settings, encoder_width", [("multilingual_default.json", 384), ("multilingual_whisper_base.json", 512)])
def test_the_multilingual_composition_fits_qwen_and_reads_a_real_clip(part_cache, settings, encoder_width):
    """The multilingual parts (Whisper tiny.en, or base, + Qwen): the mapper reads the encoder's width and writes
    Qwen's, the two reserved tokens get rows of their own, and a real clip fills exactly its placeholders."""
    from scripts.build_default_model import compose, default_settings

    torch.manual_seed(0)
    model, processor = compose(default_settings(os.path.join(ROOT, "configs", settings)))
    llm = model.config.text_config
    assert (llm.model_type, llm.hidden_size) == ("qwen2", 896)
    assert model.config.encoder_config.d_model == encoder_width == model.multi_modal_projector.blocks[0].conv.conv.in_channels
    assert model.multi_modal_projector.output_projection.out_features == 896
    rows = model.get_input_embeddings().num_embeddings
    ids = {model.config.audio_token_id, model.config.mapper_pad_token_id}
    assert len(ids) == 2 and max(ids) < rows and all(processor.tokenizer.convert_ids_to_tokens(i) for i in ids)
    conversation = [{"role": "user", "content": [{"type": "audio", "audio": ARCTIC.audio},
                                                 {"type": "text", "text": "Übersetze das Audio ins Deutsche."}]}]
    batch = processor.apply_chat_template(conversation)
    placeholders = int((batch["input_ids"] == model.config.audio_token_id).sum())
    with torch.no_grad():
        audio = model.get_audio_features(batch["input_features"], batch["input_features_mask"])
        logits = model(**batch).logits
    assert placeholders == int(audio.lengths.sum()) > 10
    assert logits.shape == (1, batch["input_ids"].shape[1], rows)


def test_a_snapshot_of_trained_weights_rebuilds_the_same_checkpoint(default_dir, tmp_path):
    """export_default_weights --output (a run in progress, committed) → build_default --weights: the same tensors,
    and the LoRA settings travel in the file's metadata."""
    snapshot = tmp_path / "progress" / "snapshot.safetensors"
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export_default_weights.py"), default_dir,
                    "--output", str(snapshot)], check=True, capture_output=True, timeout=600)
    shipped = load_file(os.path.join(WEIGHTS_DIR, "weights.safetensors"))
    head = load_file(os.path.join(WEIGHTS_DIR, "ctc_head.safetensors"))  # kept apart from the mapper + LoRA it reads
    exported = load_file(str(snapshot))
    assert exported.keys() == shipped.keys() | head.keys() and all(torch.equal(exported[k], shipped[k]) for k in shipped)
    assert all(torch.equal(exported[k], head[k].half()) for k in head)
    with safe_open(str(snapshot), framework="pt") as handle:
        lora = json.loads(handle.metadata()["lora"])
    with open(os.path.join(WEIGHTS_DIR, "settings.json")) as handle:
        assert lora == json.load(handle)["lora"]
    rebuilt = str(tmp_path / "rebuilt")
    torch.manual_seed(1)  # a different fresh mapper: every trained tensor must come from the snapshot
    build_default(rebuilt, weights_file=str(snapshot))
    with safe_open(os.path.join(rebuilt, "model.safetensors"), framework="pt") as built:
        for name, value in shipped.items():
            assert torch.equal(built.get_tensor(name), value.float()), name
