"""The papers' recipes (configs/iwslt2025/, configs/iwslt2026/): each stage parses, builds at full size on the meta
device with the papers' counts, plans the memory scripts/estimate_training_memory.py gives, and runs two real steps
with tiny stand-ins swapped in by flags only (the parts, the corpora), every other key of the file in force."""

import glob
import json
import math
import os

import pytest
import soundfile
from conftest import ROOT, make_audio

import train
from modeling_speechllm import SpeechLLMForConditionalGeneration
from scripts.make_tiny_checkpoint import build_tiny, save_parts
from training import plan

PAPER_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "iwslt20*", "stage_*.yaml")))
# The tiny stand-in mapper's shapes, given as the flag --model_config (its keys override the file's).
TINY_MAPPER = {"encoder_layer": 2, "mapper_widths": [32, 40], "mapper_ffn_dim": 64, "mapper_heads": 4,
               "mapper_layers_per_block": 1, "loss_vocabulary_sample": 16}


def config_name(path: str) -> str:
    return os.path.relpath(path, os.path.join(ROOT, "configs"))


def read_plan(path: str):
    recipe, args = train.parse_arguments([path, "--report_to", "none"])
    return recipe, args, plan.plan_stage(recipe, args)


def test_there_are_three_stages_for_each_paper():
    assert [config_name(path) for path in PAPER_CONFIGS] == [
        f"iwslt{year}/stage_{stage}.yaml" for year in (2025, 2026) for stage in "abc"
    ]


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=config_name)
def test_each_stage_builds_at_full_size_with_the_papers_parts(path):
    recipe, args, stage = read_plan(path)
    counts, config = stage.counts, stage.config
    assert recipe.stage == {"a": "mapper", "b": "text", "c": "joint"}[path[-6]]
    assert config.encoder_config.model_type == "seamless_m4t_v2" and config.encoder_layer == 24
    assert 630e6 < counts.encoder < 640e6  # SeamlessM4T-v2-large's speech encoder (w2v-BERT 2.0, 24 layers)
    if "iwslt2025" in path:
        assert config.text_config.model_type == "llama" and config.text_config.hidden_size == 4096
        assert 8.0e9 < counts.llm < 8.1e9
        assert math.isclose(counts.mapper, 277e6, rel_tol=0.01), counts.mapper  # the SpeechMapper paper's 277M
        assert counts.ctc_head == 0
    else:
        assert config.text_config.model_type == "qwen3" and config.text_config.hidden_size == 2560
        assert config.mapper_strides == [1, 4] and config.ctc_head_kind == "vocabulary"
        assert counts.ctc_head == 1024 * 151936 + 151936  # over the whole vocabulary, after block 1
        stated = open(os.path.join(os.path.dirname(path), "model.yaml")).read()
        assert "this mapper at 265.8 M" in stated and round(counts.mapper / 1e5) == 2658  # the count its model states
    if recipe.stage == "mapper":
        assert stage.trainable == counts.mapper + counts.ctc_head
    else:
        assert counts.lora > 0 and (recipe.lora_r, recipe.lora_alpha, recipe.lora_dropout) == (8, 16, 0.0)


def test_the_2025_memory_table_is_the_estimate_scripts():
    from scripts.estimate_training_memory import STAGES, default_stage_parameters

    expected = default_stage_parameters()
    for path in PAPER_CONFIGS[:3]:
        recipe, _, stage = read_plan(path)
        assert (stage.replicated, stage.held, stage.trainable) == expected[STAGES[recipe.stage]], path
        for gpus in (8, 16):
            assert plan.memory_table_line("x", stage.replicated, stage.held, stage.trainable, gpus) == \
                plan.memory_table_line("x", *expected[STAGES[recipe.stage]], gpus)


def test_an_unreachable_hub_id_is_one_line_with_what_the_recipe_reads(capsys):
    plan.main([os.path.join(ROOT, "configs", "iwslt2026", "stage_c.yaml"), "--gpus", "8", "--nodes", "2"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    covost = [line for line in lines if "fixie-ai/covost2" in line]
    assert len(covost) == 2 and all(line.strip().startswith("UNREACHABLE fixie-ai/covost2:") for line in covost)
    assert "config en_zh-CN, split train, columns audio, sentence (as transcript), translation" in covost[1]
    assert any(line.strip() == "MISSING  data/spoken-squad/train.jsonl: make it first (docs/training.md, 'Training at "
               "the papers' scale')" for line in lines)
    assert "16 GPUs in all" in out and "3,000 steps ≈" in out and "| joint (this config) |" in out


# ---------------------------------------------------------------------------------------------------------------
# Two real steps of each stage, tiny stand-ins swapped in by flags
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Tiny parts, and one small local copy of each corpus the configs name, with the columns the configs read."""
    root = tmp_path_factory.mktemp("paper-stand-ins")
    model, processor = build_tiny("seamless", seed=0)
    save_parts(model, processor.tokenizer, root)
    clips = []
    for i in range(6):
        clips.append(f"clip{i}.wav")
        soundfile.write(root / clips[-1], make_audio(2.0 + 0.25 * i, seed=i, frequency=150 + 30 * i), 16000)
    words = ["THE FOX", "SPEECH", "THE MODEL", "WE PRESENT", "LANGUAGE", "THE MAPPER"]

    def manifest(name, rows):
        path = root / name
        path.write_text("\n".join(json.dumps(row) for row in rows))
        return str(path)

    corpora = {
        "openslr/librispeech_asr": manifest("librispeech.jsonl", [
            {"audio": clip, "text": text, "speaker_id": i} for i, (clip, text) in enumerate(zip(clips, words))]),
        "fixie-ai/covost2": manifest("covost.jsonl", [
            {"audio": clip, "sentence": text.lower(), "translation": "das ist gut"} for clip, text in zip(clips, words)]),
        "outputs/fakacl-2527/train.jsonl": manifest("fakacl.jsonl", [
            {"audio": clip, "transcript": text.lower(), "task": task, "tgt_lang": lang, "translation": translation,
             "question": question, "answer": answer}
            for clip, text, (task, lang, translation, question, answer) in zip(clips, words, [
                ("asr", None, None, None, None), ("st", "de", "das ist gut", None, None),
                ("st", "it", "va bene", None, None), ("st", "zh", "很好", None, None),
                ("sqa", None, None, "what is said?", "the model"), ("asr", None, None, None, None)])]),
    }
    europarl = [{"audio": clip, "transcript": text.lower(), "task": "st", "translation": "va bene"} for clip, text in zip(clips, words)]
    corpora["data/europarl-st/en-de.train.jsonl"] = manifest("europarl-de.jsonl", [{**row, "tgt_lang": "de"} for row in europarl])
    corpora["data/europarl-st/en-it.train.jsonl"] = manifest("europarl-it.jsonl", [{**row, "tgt_lang": "it"} for row in europarl])
    corpora["data/spoken-squad/train.jsonl"] = manifest("spoken-squad.jsonl", [
        {"audio": clip, "transcript": text.lower(), "task": "sqa", "question": "what is said?", "answer": text.lower()}
        for clip, text in zip(clips, words)])
    corpora["data/acl6060/dev.jsonl"] = manifest("acl6060.jsonl", [  # its talks' ST rows (ASR beside them in stage C)
        {"audio": clip, "transcript": text.lower(), "task": "st", "tgt_lang": "zh", "translation": "很好"}
        for clip, text in zip(clips, words)])
    return root, corpora


def run_paper_stage(path, stand_ins, output_dir, *extra):
    root, corpora = stand_ins
    argv = [
        path,
        "--encoder_name_or_path", str(root / "encoder"), "--llm_name_or_path", str(root / "llm"),
        "--model_config", json.dumps(TINY_MAPPER),
        "--stand_in", *[f"{source}={local}" for source, local in corpora.items()],
        "--output_dir", str(output_dir), "--feature_cache_dir", str(root / "features"),
        "--max_steps", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
        "--logging_steps", "1", "--report_to", "none", *extra,
    ]
    return train.main(argv)


@pytest.mark.parametrize("year", [2025, 2026])
def test_each_paper_runs_its_three_stages_two_steps_on_stand_ins(year, stand_ins, tmp_path):
    configs = os.path.join(ROOT, "configs", f"iwslt{year}")
    a = run_paper_stage(os.path.join(configs, "stage_a.yaml"), stand_ins, tmp_path / "a")
    b = run_paper_stage(os.path.join(configs, "stage_b.yaml"), stand_ins, tmp_path / "b")
    c = run_paper_stage(os.path.join(configs, "stage_c.yaml"), stand_ins, tmp_path / "c",
                        "--mapper_checkpoint", str(tmp_path / "a"), "--lora_checkpoint", str(tmp_path / "b"))
    for trainer in (a, b, c):
        assert trainer.state.global_step == 2
        assert all(math.isfinite(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry)
    # the three stages composed one base checkpoint from the parts, with the file's values where no flag overrode them
    bases = glob.glob(str(tmp_path / "base-*" / "config.json"))
    assert len(bases) == 1
    config = json.load(open(bases[0]))
    assert config["base_models"] == {"encoder": str(stand_ins[0] / "encoder"), "llm": str(stand_ins[0] / "llm")}
    assert config["mapper_widths"] == [32, 40] and config["mapper_conv_kernel"] == 6
    assert config["frame_average"] == (3 if year == 2025 else 2)
    assert config["mapper_strides"] == ([2, 2] if year == 2025 else [1, 4])
    assert config["ctc_head"] == ("none" if year == 2025 else "vocabulary")
    # the joint stage trained stage A's mapper with stage B's LoRA, at the file's two learning rates
    assert c.args.lr_scheduler_type == "constant" and a.args.lr_scheduler_type == "cosine"
    assert sorted(group["lr"] for group in c.optimizer.param_groups if group["params"]) == [1e-5, 5e-5]
    final = SpeechLLMForConditionalGeneration.from_pretrained(tmp_path / "c")
    assert (final.config.lora["r"], final.config.lora["lora_alpha"]) == (8, 16)
